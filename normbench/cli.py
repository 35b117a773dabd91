"""Typer app only: parse arguments, call the Python API, render, exit with the right code."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from normbench.errors import NormbenchError

app = typer.Typer(
    name="normbench",
    help="Benchmark normalization layers: train every variant of a YAML suite, store, compare.\n\n"
    "Example: normbench run suites/quickstart.yaml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    """Machine-readable output formats shared by every command."""

    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"
    latex = "latex"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format on stdout.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one sentence on stderr and return the Exit to raise."""
    print(f"normbench: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"normbench: warning: {message}", file=sys.stderr)


def handle_errors(func):  # type: ignore[no-untyped-def]
    """Decorator for commands: a ``NormbenchError`` becomes one sentence on stderr and exit 2."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return func(*args, **kwargs)
        except NormbenchError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper


# --- commands are added below; each is parse → API call → render → exit code -------------------


def main() -> None:
    """Console-script entry point: user errors become one line and exit 2, never a traceback."""
    try:
        app()
    except NormbenchError as exc:
        print(f"normbench: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("normbench: interrupted", file=sys.stderr)
        sys.exit(130)
