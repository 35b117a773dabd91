"""Safe YAML loading that remembers the line of every key and list item; refuses hostile files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from normbench.errors import SuiteError

Lines = dict[tuple, int]

# A suite is a page of text: these limits are far above any real one and far below what
# would exhaust memory (a 1.4 KB "billion laughs" file expands to 10⁹ values).
MAX_BYTES = 4 * 2**20
MAX_ALIASES = 200
MAX_NODES = 200_000
MAX_DEPTH = 100


class _Budget:
    """Counts the values an expansion produces, so alias bombs and recursive anchors stop early."""

    def __init__(self, file: str) -> None:
        self.file, self.nodes = file, 0

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise SuiteError(
                f"the YAML expands to more than {MAX_NODES:,} values through its "
                "aliases (an alias bomb?); write the values out instead",
                file=self.file,
                line=line,
            )
        if depth > MAX_DEPTH:
            raise SuiteError(
                f"the YAML is nested more than {MAX_DEPTH} levels deep (or an "
                "anchor refers to itself)",
                file=self.file,
                line=line,
            )


def _walk(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: tuple,
    lines: Lines,
    budget: _Budget,
    depth: int = 0,
) -> Any:
    """Turn a composed node into plain Python data, recording 1-based lines by key path."""
    budget.spend(node, depth)
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Only a scalar key is constructed: a collection key could be an alias bomb.
            if not isinstance(key_node, yaml.ScalarNode):
                raise SuiteError(
                    "mapping keys must be plain words", line=key_node.start_mark.line + 1
                )
            key = loader.construct_object(key_node, deep=True)
            if key is None or not isinstance(key, str | int | float | bool):
                raise SuiteError(
                    "mapping keys must be plain words", line=key_node.start_mark.line + 1
                )
            key = str(key)
            if key in out:
                raise SuiteError(
                    f"key '{key}' appears twice", line=key_node.start_mark.line + 1, path=path
                )
            # The key's own line is the most useful place to point at for its value.
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*path, key), lines, budget, depth + 1)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(loader, item, (*path, i), lines, budget, depth + 1)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


class _CountingLoader(yaml.SafeLoader):
    """A SafeLoader that refuses documents with too many aliases (checked while composing)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (an alias bomb?)", mark
                )
        return super().compose_node(parent, index)


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """Parse YAML text safely; return the data and a map key-path → line number."""
    check_text(text, file)
    loader = _CountingLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: Lines = {}
        return _walk(loader, node, (), lines, _Budget(file)), lines
    except SuiteError as exc:
        exc.file = exc.file or file
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise SuiteError(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"YAML error: {exc}", file=file) from None
    except RecursionError:
        raise SuiteError(
            f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", file=file
        ) from None
    finally:
        loader.dispose()


def check_text(text: str, file: str) -> None:
    """Refuse text that no suite file contains: NUL and other control characters."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SuiteError(
            "contains NUL bytes: a binary file, not a YAML suite", file=file, line=line
        )
    bad = next((c for c in text if ord(c) < 32 and c not in "\t\n\r"), None)
    if bad is not None:
        line = text.count("\n", 0, text.index(bad)) + 1
        raise SuiteError(
            f"contains the control character {bad!r}: a binary file, not a YAML suite",
            file=file,
            line=line,
        )


def decode(raw: bytes, file: str) -> str:
    """UTF-8 text of a suite file, or a ``SuiteError`` naming the line of the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SuiteError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "a suite must be a UTF-8 YAML file",
            file=file,
            line=line,
        ) from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is harmless


def read_yaml(path: Path) -> tuple[Any, Lines, str]:
    """Read and parse a YAML file; return data, line map and the raw text."""
    if not path.exists():
        raise SuiteError("file not found", file=str(path))
    if path.is_dir():
        raise SuiteError("is a directory, not a suite file", file=str(path))
    if not path.is_file():
        raise SuiteError(
            "is not a regular file (a pipe or device?), not a suite file", file=str(path)
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SuiteError(f"cannot read the file ({exc.strerror or exc})", file=str(path)) from None
    if len(raw) > MAX_BYTES:
        raise SuiteError(
            f"is larger than {MAX_BYTES // 2**20} MiB: not a suite file", file=str(path)
        )
    text = decode(raw, str(path))
    data, lines = parse_yaml(text, str(path))
    return data, lines, text
