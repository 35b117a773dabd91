"""Safe YAML loading that remembers the line of every key and list item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from normbench.errors import SuiteError

Lines = dict[tuple, int]


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, lines: Lines) -> Any:
    """Turn a composed node into plain Python data, recording 1-based lines by key path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise SuiteError("mapping keys must be plain words", line=key_node.start_mark.line + 1)
            key = str(key)
            if key in out:
                raise SuiteError(
                    f"key '{key}' appears twice", line=key_node.start_mark.line + 1, path=path
                )
            # The key's own line is the most useful place to point at for its value.
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """Parse YAML text safely; return the data and a map key-path → line number."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: Lines = {}
        return _walk(loader, node, (), lines), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise SuiteError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> tuple[Any, Lines, str]:
    """Read and parse a YAML file; return data, line map and the raw text."""
    if not path.exists():
        raise SuiteError("file not found", file=str(path))
    if path.is_dir():
        raise SuiteError("is a directory, not a suite file", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"cannot read the file ({exc})", file=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    return data, lines, text
