"""Error types that the CLI turns into one clear sentence and exit code 2."""

from __future__ import annotations

from collections.abc import Sequence

PathPart = str | int

# The exit codes of every command (a failed gate is 1, bad input 2, failed tasks 3, Ctrl-C 130).
EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def format_path(path: Sequence[PathPart]) -> str:
    """Render a key path like ``grid.norm[2]`` from ``("grid", "norm", 2)``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class NormbenchError(Exception):
    """Base class for every error that is the user's input, not a bug (exit code 2)."""

    exit_code = 2


class OptionError(NormbenchError, ValueError):
    """A bad option inside one object; ``path`` is relative to that object."""

    def __init__(self, message: str, path: Sequence[PathPart] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)

    def __str__(self) -> str:
        where = format_path(self.path)
        return f"{where}: {self.message}" if where else self.message


class SuiteError(NormbenchError):
    """A suite-file error with its file, line and key path."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        path: Sequence[PathPart] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.path = tuple(path)

    def __str__(self) -> str:
        loc = self.file or "<suite>"
        if self.line is not None:
            loc += f":{self.line}"
        where = format_path(self.path)
        return f"{loc}: {where}: {self.message}" if where else f"{loc}: {self.message}"


class InputError(NormbenchError):
    """Any other bad input: a missing run directory, a corrupt data file, a bad flag value."""


ECHO_LIMIT = 120  # characters of a user's value an error message repeats


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, or its start and end around ``…`` when longer than ``limit`` characters:
    a refused 3,000-value list is named, not repeated."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    return f"{text[: keep * 2 // 3]}…{text[-(keep // 3) :]} ({len(text):,} characters)"


def echo(value: object) -> str:
    """A user's value as an error message repeats it: ``repr``, shortened."""
    return shorten(repr(value))


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """Return `` — did you mean 'x'?`` for the closest choice, or an empty string."""
    import difflib

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def unknown(kind: str, word: object, choices: Sequence[str]) -> str:
    """The standard sentence for an unknown name, with suggestion and the allowed values."""
    return (
        f"unknown {kind} '{shorten(str(word))}'{did_you_mean(str(word), choices)} "
        f"(choose from {', '.join(choices)})"
    )
