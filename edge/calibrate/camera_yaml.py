"""Replace or add one entry of the config's ``cameras:`` list in the YAML text, keeping the rest of the file.

The entry's exact text span is found with PyYAML's composer and only that span changes (a new camera is
appended after the last one). The result must load to exactly the original data with that one entry
replaced, or the whole document is re-serialised (comments lost) so that what is written is always what
was asked for.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import yaml

from edge.errors import ConfigError

logger = logging.getLogger(__name__)


def _expected(data: dict[str, Any], camera: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    cameras = out.get("cameras") or []
    if not isinstance(cameras, list):
        raise ConfigError("the config's cameras is not a list")
    ids = [c.get("id") if isinstance(c, dict) else None for c in cameras]
    if camera["id"] in ids:
        cameras[ids.index(camera["id"])] = camera
    else:
        cameras.append(camera)
    out["cameras"] = cameras
    return out


def _block(camera: dict[str, Any], indent: int) -> str:
    """``camera`` as block YAML whose first line continues where the old entry began (after ``- ``)."""
    lines = yaml.safe_dump(camera, allow_unicode=True, sort_keys=False, default_flow_style=None).splitlines()
    pad = " " * indent
    return "\n".join([lines[0], *(pad + line for line in lines[1:])])


def _in_place(text: str, camera: dict[str, Any]) -> str:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("top level is not a mapping")
    node = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "cameras"), None)
    if not isinstance(node, yaml.SequenceNode) or node.flow_style or not node.value:
        raise ValueError("cameras is not a non-empty block list")
    for item in node.value:
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            raise ValueError("a camera entry is not a block mapping")
        found = next((v for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "id"), None)
        if isinstance(found, yaml.ScalarNode) and found.value == camera["id"]:
            start: int = item.start_mark.index
            end: int = item.end_mark.index
            # a block mapping's end mark can sit at the start of the next line: keep that line break
            while end > start and text[end - 1] in "\n ":
                end -= 1
            return text[:start] + _block(camera, item.start_mark.column) + text[end:]
    last = node.value[-1]
    end = last.end_mark.index
    while end > 0 and text[end - 1] in "\n ":
        end -= 1
    dash_col: int = last.start_mark.column - 2
    if dash_col < 0 or text[_line_start(text, last.start_mark.index) + dash_col] != "-":
        raise ValueError("cannot find the list's dash")
    entry = "\n" + " " * int(dash_col) + "- " + _block(camera, int(last.start_mark.column))
    return text[:end] + entry + text[end:]


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def set_camera(text: str, camera: dict[str, Any]) -> str:
    """``text`` with the camera of ``camera["id"]`` replaced by ``camera`` (appended when it is new)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the config is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping at the top level")
    wanted = _expected(data, camera)
    try:
        new_text = _in_place(text, camera)
        if yaml.safe_load(new_text) == wanted:
            return new_text
        logger.info("in-place edit of camera %s did not reproduce the data; rewriting the config", camera["id"])
    except (ValueError, IndexError, yaml.YAMLError) as exc:
        logger.info("in-place edit of camera %s not possible (%s); rewriting the config", camera["id"], exc)
    return str(yaml.safe_dump(wanted, allow_unicode=True, sort_keys=False))
