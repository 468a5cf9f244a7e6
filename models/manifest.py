"""Model-pack manifests: which files a pack holds, their sha256, inputs and licence."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import ModelPackError


class PackFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the file.")
    role: str = Field(description="What the engine uses the file for, e.g. 'recognition'.")
    input: str = Field(default="", description="Input the model expects (layout, size, colour order).")
    output: str = Field(default="", description="What the model returns.")


class PackLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    python_package: str | None = Field(default=None,
                                       description="Installed package whose folder holds the files.")
    subdir: str = Field(default="", description="Folder inside the package or the models dir.")


class PackManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Pack name, also the engine's model_id.")
    description: str = Field(description="What the pack contains.")
    licence: str = Field(description="Licence of the model files.")
    commercial_use: bool = Field(description="Whether the licence allows commercial use.")
    locate: PackLocation = Field(description="Where the pack is found when no models dir holds it.")
    files: dict[str, PackFile] = Field(min_length=1, description="File name to expected digest and role.")

    def file_for_role(self, role: str) -> str:
        for name, spec in self.files.items():
            if spec.role == role:
                return name
        raise ModelPackError(f"model pack '{self.name}' has no file with role '{role}'")


def builtin_manifests() -> dict[str, PackManifest]:
    """Manifests shipped inside this package, keyed by pack name."""
    out: dict[str, PackManifest] = {}
    for entry in resources.files("models").joinpath("manifests").iterdir():
        if entry.name.endswith(".json"):
            manifest = parse_manifest(entry.read_text(encoding="utf-8"), source=entry.name)
            out[manifest.name] = manifest
    return out


def parse_manifest(text: str, *, source: str) -> PackManifest:
    try:
        return PackManifest.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelPackError(f"manifest {source} is invalid: {exc}") from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
