"""Model packs: manifests, locating pack folders, integrity checks."""
