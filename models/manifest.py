"""Model-pack manifests: which files a pack holds, their sha256, inputs and licence."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import ModelPackError


class TensorInput(BaseModel):
    """The one image input of an ONNX model, declared so that nothing is guessed from the graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name of the graph input, e.g. 'input.1'.")
    shape: tuple[int | None, int | None, int | None, int | None] = Field(
        description="Input shape in `layout` order; null marks a dynamic dimension (batch, height, width).")
    layout: Literal["NCHW", "NHWC"] = Field(default="NCHW", description="Axis order of the input tensor.")
    colour: Literal["RGB", "BGR"] = Field(description="Channel order the model was trained on.")
    mean: float = Field(description="Subtracted from every 0-255 pixel value.")
    std: float = Field(gt=0, description="The difference is divided by this.")

    @model_validator(mode="after")
    def _three_channels(self) -> TensorInput:
        channels = self.shape[1] if self.layout == "NCHW" else self.shape[3]
        if channels != 3:
            raise ValueError(f"an image input needs 3 channels, the shape {list(self.shape)} declares {channels}")
        return self

    @property
    def height(self) -> int | None:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int | None:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


class AnchorHead(BaseModel):
    """How an anchor-point face detector (SCRFD) lays out its outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["scrfd"] = Field(description="Decoder family; 'scrfd': distances from anchor points.")
    strides: tuple[int, ...] = Field(min_length=1, description="Feature strides, one score/box/keypoint "
                                                                "output each, e.g. [8, 16, 32].")
    anchors: int = Field(ge=1, le=16, description="Anchors per feature-map location.")
    keypoints: int = Field(ge=0, le=68, description="Keypoints per face (5 for SCRFD *_kps models, 0 for none).")


class PackFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the file.")
    role: str = Field(description="What the engine uses the file for, e.g. 'recognition'.")
    input: str = Field(default="", description="Input the model expects (layout, size, colour order).")
    output: str = Field(default="", description="What the model returns.")
    tensor_input: TensorInput | None = Field(default=None, description="Declared input of an ONNX model.")
    output_names: tuple[str, ...] = Field(
        default=(), description="Graph outputs in the order the engine reads them; empty means the graph's "
                                "own order. For SCRFD: the scores, then the boxes, then the keypoints, each "
                                "by stride.")
    output_dim: int | None = Field(default=None, ge=1, description="Length of an embedding, for recognisers.")
    head: AnchorHead | None = Field(default=None, description="Output layout, for anchor-point detectors.")


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
    for entry in sorted(resources.files("models").joinpath("manifests").iterdir(), key=lambda e: e.name):
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
