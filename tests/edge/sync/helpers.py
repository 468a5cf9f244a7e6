"""Gallery answers in the protocol's shape (issue 11, "Down"), built from real photos, for the apply tests.

These are the bytes a console sends; the console itself is exercised in test_console_sync.py.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from vision.types import FloatArray


def photo_entry(data: bytes, photo_id: str = "p") -> dict[str, Any]:
    return {"id": photo_id, "sha256": hashlib.sha256(data).hexdigest(), "content_type": "image/jpeg",
            "data": base64.b64encode(data).decode("ascii")}


def person_entry(person_id: str, name: str, photos: Sequence[bytes], *, template: FloatArray | None = None,
                 model_id: str = "", plates: Sequence[str] = (), role: str = "vip", tier: str = "钻石",
                 version: int = 1) -> dict[str, Any]:
    tpl = None if template is None else {
        "model_id": model_id, "vector": base64.b64encode(np.asarray(template, "<f4").tobytes()).decode("ascii")}
    return {"id": person_id, "name": name, "role": role, "tier": tier, "version": version,
            "photos": [photo_entry(p, f"{person_id}-{i}") for i, p in enumerate(photos)], "template": tpl,
            "plates": [{"plate": p, "kind": "blue"} for p in plates]}


def answer(version: int, persons: Sequence[dict[str, Any]] = (), erased: Sequence[str] = (), *,
           snapshot: bool = False, more: bool = False, branch: str = "BJ001") -> dict[str, Any]:
    return {"branch": branch, "version": version, "snapshot": snapshot, "more": more, "persons": list(persons),
            "erased": list(erased)}
