"""Set ``face.voter`` values in a YAML config file in place: comments, order and layout are kept.

The file is composed with PyYAML to find each value's exact text span; only those spans change
(missing keys are inserted beside their siblings). The edited text must load to exactly the
original data plus the new values, or the edit falls back to re-serialising the data (comments
lost, reported to the caller). The result is validated with :func:`edge.config.load_config`
before it atomically replaces the file; a config that would not load is never written.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError

logger = logging.getLogger(__name__)

Value = float | int


def _format(value: Value) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _child(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _insert_into(text: str, mapping: yaml.MappingNode, items: list[str]) -> tuple[int, int, str]:
    """An edit that adds ``items`` ("key: value" each) to ``mapping``, before its first key."""
    if mapping.flow_style:
        brace = mapping.start_mark.index  # the "{"
        sep = ", " if mapping.value else ""
        return brace + 1, brace + 1, ", ".join(items) + sep
    if not mapping.value:
        raise ValueError("empty block mapping")
    first_key = mapping.value[0][0]
    start = _line_start(text, first_key.start_mark.index)
    if text[start:first_key.start_mark.index].strip():
        raise ValueError("the mapping's first key does not start its line")
    indent = " " * first_key.start_mark.column
    return start, start, "".join(f"{indent}{item}\n" for item in items)


def _edits(text: str, values: dict[str, Value]) -> list[tuple[int, int, str]]:
    root = yaml.compose(text)
    face = _child(root, "face")
    if face is None:
        if not isinstance(root, yaml.MappingNode) or root.flow_style:
            raise ValueError("top level is not a block mapping")
        tail = "" if text.endswith("\n") or not text else "\n"
        items = ", ".join(f"{k}: {_format(v)}" for k, v in values.items())
        return [(len(text), len(text), f"{tail}face:\n  voter: {{{items}}}\n")]
    voter = _child(face[1], "voter")
    if voter is None:
        if not isinstance(face[1], yaml.MappingNode):
            raise ValueError("face is not a mapping")
        items = ", ".join(f"{k}: {_format(v)}" for k, v in values.items())
        return [_insert_into(text, face[1], [f"voter: {{{items}}}"])]
    mapping = voter[1]
    if not isinstance(mapping, yaml.MappingNode):
        raise ValueError("face.voter is not a mapping")
    edits: list[tuple[int, int, str]] = []
    missing: list[str] = []
    for key, value in values.items():
        found = _child(mapping, key)
        if found is None:
            missing.append(f"{key}: {_format(value)}")
        elif isinstance(found[1], yaml.ScalarNode):
            edits.append((found[1].start_mark.index, found[1].end_mark.index, _format(value)))
        else:
            raise ValueError(f"face.voter.{key} is not a plain value")
    if missing:
        edits.append(_insert_into(text, mapping, missing))
    return edits


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    spans = sorted((start, end) for start, end, _ in edits)
    if any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)):
        raise ValueError("edits overlap (an alias?)")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _expected(data: object, values: dict[str, Value]) -> dict[str, object]:
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    face = out.setdefault("face", {})
    if not isinstance(face, dict):
        raise ConfigError("face is not a mapping")
    voter = face.setdefault("voter", {})
    if not isinstance(voter, dict):
        raise ConfigError("face.voter is not a mapping")
    voter.update(values)
    return out


@dataclass(frozen=True, slots=True)
class EditResult:
    config: EdgeConfig
    comments_kept: bool


def set_voter_values(path: Path, values: dict[str, Value]) -> EditResult:
    """Write ``values`` under ``face.voter`` of ``path`` atomically; refuse when the result would not load."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    wanted = _expected(data, values)
    new_text: str | None
    try:
        new_text = _apply(text, _edits(text, values))
        if yaml.safe_load(new_text) != wanted:
            new_text = None
    except (ValueError, yaml.YAMLError) as exc:
        logger.info("in-place edit of %s not possible (%s); rewriting it", path, exc)
        new_text = None
    comments_kept = new_text is not None
    if new_text is None:
        new_text = yaml.safe_dump(wanted, allow_unicode=True, sort_keys=False)
    tmp = path.with_name(f".{path.name}.calibrate.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(new_text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        try:
            config = load_config(tmp)
        except ConfigError as exc:
            reason = str(exc).replace(str(tmp), str(path))
            raise ConfigError(f"refusing to write {path}: the calibrated config would not load: {reason}") from exc
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write config {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return EditResult(config, comments_kept)
