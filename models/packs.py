"""Locate model packs on disk and verify them against their manifest before use."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from models.errors import PackFileError, PackNotFoundError
from models.manifest import PackManifest, builtin_manifests, sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResolvedPack:
    """A pack whose files were found and whose digests matched."""

    manifest: PackManifest
    folder: Path

    def path_for(self, role: str) -> Path:
        return self.folder / self.manifest.file_for_role(role)


def _package_folder(package: str) -> Path | None:
    # find_spec does not execute the package (face_recognition_models imports pkg_resources).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def candidate_folders(manifest: PackManifest, models_dir: Path | None) -> list[Path]:
    folders: list[Path] = []
    if models_dir is not None:
        folders.append(models_dir / manifest.name)
    if manifest.locate.python_package:
        base = _package_folder(manifest.locate.python_package)
        if base is not None:
            folders.append(base / manifest.locate.subdir if manifest.locate.subdir else base)
    return folders


def verify_folder(manifest: PackManifest, folder: Path) -> ResolvedPack:
    """Check every file of ``manifest`` in ``folder``; raise naming the first bad file."""
    for name, spec in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise PackFileError(manifest.name, name, folder, "missing")
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise PackFileError(manifest.name, name, folder,
                                f"sha256 mismatch (expected {spec.sha256}, found {actual}); "
                                "the file is corrupt or not the one this pack expects")
    logger.info("model pack %s verified in %s", manifest.name, folder)
    return ResolvedPack(manifest=manifest, folder=folder)


def resolve_pack(name: str, models_dir: Path | None = None,
                 manifests: dict[str, PackManifest] | None = None) -> ResolvedPack:
    """Find pack ``name``: the models dir first, then its installed package. Verify it."""
    known = manifests if manifests is not None else builtin_manifests()
    if name not in known:
        raise PackNotFoundError(name, [])
    manifest = known[name]
    folders = candidate_folders(manifest, models_dir)
    existing = [f for f in folders if f.is_dir()]
    if not existing:
        raise PackNotFoundError(name, folders)
    return verify_folder(manifest, existing[0])


@dataclass(frozen=True, slots=True)
class PackStatus:
    name: str
    licence: str
    commercial_use: bool
    folder: Path | None
    status: str


def list_packs(models_dir: Path | None = None) -> list[PackStatus]:
    """Every known pack with its licence and whether it verifies here."""
    out: list[PackStatus] = []
    for manifest in builtin_manifests().values():
        try:
            pack = resolve_pack(manifest.name, models_dir)
        except (PackNotFoundError, PackFileError) as exc:
            out.append(PackStatus(manifest.name, manifest.licence, manifest.commercial_use, None, str(exc)))
        else:
            out.append(PackStatus(manifest.name, manifest.licence, manifest.commercial_use, pack.folder, "ok"))
    return out
