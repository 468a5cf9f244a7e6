"""Set values of one section of a YAML config file in place (``face.voter`` after a calibration,
``sync.console_url`` after registering with the console): comments, order and layout are kept.

The file is composed with PyYAML to find each value's exact text span; only those spans change
(missing keys are inserted beside their siblings). The edited text must load to exactly the
original data plus the new values, or the edit falls back to re-serialising the data (comments
lost, reported to the caller). The result is validated with :func:`edge.config.load_config`
before it atomically replaces the file; a config that would not load is never written.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError

logger = logging.getLogger(__name__)

Value = float | int | str


def _format(value: Value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
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


def _edits(text: str, section: tuple[str, ...], values: dict[str, Value]) -> list[tuple[int, int, str]]:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ValueError("top level is not a block mapping")
    items = ", ".join(f"{k}: {_format(v)}" for k, v in values.items())
    node: yaml.Node = root
    for depth, key in enumerate(section):
        found = _child(node, key)
        if found is None:  # the rest of the section is new: one flow mapping holding it
            inner = f"{{{items}}}"
            for deeper in reversed(section[depth + 1:]):
                inner = f"{{{deeper}: {inner}}}"
            if node is root:
                tail = "" if text.endswith("\n") or not text else "\n"
                return [(len(text), len(text), f"{tail}{key}: {inner}\n")]
            assert isinstance(node, yaml.MappingNode)
            return [_insert_into(text, node, [f"{key}: {inner}"])]
        node = found[1]
        if not isinstance(node, yaml.MappingNode):
            raise ValueError(f"{'.'.join(section[:depth + 1])} is not a mapping")
    assert isinstance(node, yaml.MappingNode)  # every level was checked above
    edits: list[tuple[int, int, str]] = []
    missing: list[str] = []
    for key, value in values.items():
        found = _child(node, key)
        if found is None:
            missing.append(f"{key}: {_format(value)}")
        elif isinstance(found[1], yaml.ScalarNode):
            edits.append((found[1].start_mark.index, found[1].end_mark.index, _format(value)))
        else:
            raise ValueError(f"{'.'.join(section)}.{key} is not a plain value")
    if missing:
        edits.append(_insert_into(text, node, missing))
    return edits


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    spans = sorted((start, end) for start, end, _ in edits)
    if any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)):
        raise ValueError("edits overlap (an alias?)")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _expected(data: object, section: tuple[str, ...], values: dict[str, Value]) -> dict[str, object]:
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node: dict[str, object] = out
    for depth, key in enumerate(section):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(section[:depth + 1])} is not a mapping")
        node = child
    node.update(values)
    return out


@dataclass(frozen=True, slots=True)
class EditResult:
    config: EdgeConfig
    comments_kept: bool


def set_voter_values(path: Path, values: dict[str, Value]) -> EditResult:
    """Write ``values`` under ``face.voter`` of ``path`` atomically; refuse when the result would not load."""
    return set_values(path, ("face", "voter"), values)


def set_values(path: Path, section: tuple[str, ...], values: dict[str, Value]) -> EditResult:
    """Write ``values`` into the mapping at ``section`` of ``path`` atomically (the file keeps its comments
    when an in-place edit is possible); refuse when the result would not load."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    wanted = _expected(data, section, values)
    new_text: str | None
    try:
        new_text = _apply(text, _edits(text, section, values))
        if yaml.safe_load(new_text) != wanted:
            new_text = None
    except (ValueError, yaml.YAMLError) as exc:
        logger.info("in-place edit of %s not possible (%s); rewriting it", path, exc)
        new_text = None
    comments_kept = new_text is not None
    if new_text is None:
        new_text = yaml.safe_dump(wanted, allow_unicode=True, sort_keys=False)
    return EditResult(write_config_text(path, new_text), comments_kept)


def write_config_text(path: Path, new_text: str) -> EdgeConfig:
    """Replace ``path`` with ``new_text`` atomically (same mode) if it loads with :func:`edge.config.load_config`;
    a config that would not load is never written (ConfigError naming the problem)."""
    tmp = path.with_name(f".{path.name}.edit.tmp")
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
            raise ConfigError(f"refusing to write {path}: the edited config would not load: {reason}") from exc
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write config {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return config
