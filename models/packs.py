"""Locate model packs on disk and verify them against their manifest before use.

A pack is described by a manifest: either one built into this package (``models/manifests``) or,
for a pack that is not built in, a pack-local ``<models_dir>/<pack>/manifest.json`` with the same
schema. A built-in manifest always wins over a pack-local one of the same name, so a folder cannot
replace the digests this package pins. Either way every listed file is checked against its sha256.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelPackError, PackFileError, PackNotFoundError
from models.manifest import PackManifest, builtin_manifests, parse_manifest, sha256_file

logger = logging.getLogger(__name__)

LOCAL_MANIFEST = "manifest.json"
_PACK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a plain folder name: no separators, no '..'


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
            raise PackFileError(manifest.name, name, folder, f"missing (expected sha256 {spec.sha256})")
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise PackFileError(manifest.name, name, folder,
                                f"sha256 mismatch (expected {spec.sha256}, found {actual}); "
                                "the file is corrupt or not the one this pack expects")
    logger.info("model pack %s verified in %s", manifest.name, folder)
    return ResolvedPack(manifest=manifest, folder=folder)


def local_manifest(name: str, models_dir: Path) -> PackManifest | None:
    """The pack-local manifest ``<models_dir>/<name>/manifest.json``; None where the file is absent."""
    folder = models_dir / name
    path = folder / LOCAL_MANIFEST
    if not _PACK_NAME.match(name) or not path.is_file():
        return None
    try:
        manifest = parse_manifest(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, ModelPackError) as exc:
        raise PackFileError(name, LOCAL_MANIFEST, folder, f"unusable pack-local manifest: {exc}") from exc
    if manifest.name != name:
        raise PackFileError(name, LOCAL_MANIFEST, folder,
                            f"it names pack '{manifest.name}'; a pack-local manifest must carry its folder's name")
    return manifest


def resolve_pack(name: str, models_dir: Path | None = None,
                 manifests: dict[str, PackManifest] | None = None) -> ResolvedPack:
    """Find pack ``name``: the models dir first, then its installed package. Verify it.

    A name with no built-in manifest is looked up as ``<models_dir>/<name>/manifest.json``.
    """
    known = manifests if manifests is not None else builtin_manifests()
    if name not in known:
        if models_dir is None or not _PACK_NAME.match(name):
            raise PackNotFoundError(name, [])
        local = local_manifest(name, models_dir)
        if local is None:
            raise PackNotFoundError(name, [models_dir / name / LOCAL_MANIFEST],
                                    hint=f"it is not built in, so its folder needs a {LOCAL_MANIFEST}")
        logger.info("model pack %s: using its pack-local manifest in %s", name, models_dir / name)
        return verify_folder(local, models_dir / name)
    manifest = known[name]
    if models_dir is not None and (models_dir / name / LOCAL_MANIFEST).is_file():
        logger.warning("model pack %s is built in; %s is ignored (register a different pack under another "
                       "name)", name, models_dir / name / LOCAL_MANIFEST)
    folders = candidate_folders(manifest, models_dir)
    existing = [f for f in folders if f.is_dir()]
    if not existing:
        hint = "" if folders else f"no installed package holds it; copy its files into <models_dir>/{name}/"
        raise PackNotFoundError(name, folders, hint=hint)
    return verify_folder(manifest, existing[0])


@dataclass(frozen=True, slots=True)
class PackStatus:
    name: str
    licence: str
    commercial_use: bool
    folder: Path | None
    status: str


def _local_statuses(models_dir: Path, builtin: dict[str, PackManifest]) -> list[PackStatus]:
    """Packs registered by a pack-local manifest in ``models_dir`` (names with no built-in manifest)."""
    if not models_dir.is_dir():
        return []
    out: list[PackStatus] = []
    for folder in sorted(models_dir.iterdir()):
        name = folder.name
        if name in builtin or not (folder / LOCAL_MANIFEST).is_file():
            continue
        try:
            local = local_manifest(name, models_dir)
        except PackFileError as exc:
            out.append(PackStatus(name, "?", False, None, str(exc)))
            continue
        if local is None:  # not a plain folder name
            continue
        try:
            pack = verify_folder(local, folder)
        except PackFileError as exc:
            out.append(PackStatus(name, local.licence, local.commercial_use, None, str(exc)))
        else:
            out.append(PackStatus(name, local.licence, local.commercial_use, pack.folder, "ok"))
    return out


def list_packs(models_dir: Path | None = None) -> list[PackStatus]:
    """Every known pack (built in, then pack-local ones in ``models_dir``), its licence and whether it verifies."""
    builtin = builtin_manifests()
    out: list[PackStatus] = []
    for manifest in builtin.values():
        try:
            pack = resolve_pack(manifest.name, models_dir)
        except (PackNotFoundError, PackFileError) as exc:
            out.append(PackStatus(manifest.name, manifest.licence, manifest.commercial_use, None, str(exc)))
        else:
            out.append(PackStatus(manifest.name, manifest.licence, manifest.commercial_use, pack.folder, "ok"))
    if models_dir is not None:
        out.extend(_local_statuses(models_dir, builtin))
    return out
