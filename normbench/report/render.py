"""The one table renderer: columns and rows in every output format, and the format names."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from normbench.errors import InputError, unknown


@dataclass(frozen=True)
class Style:
    """How one family of tables spells the text formats.

    The families grew apart (report tables escape their cells and right-align numbers, bench
    and listing tables let tabulate do it); each keeps its spelling so saved outputs and
    scripts that parse them stay valid.
    """

    escape: bool = True  # LaTeX specials escaped here, raw LaTeX emitted (markdown: always)
    align: bool = True  # numeric columns right-aligned in markdown and LaTeX
    numparse: bool = False  # tabulate may read text cells as numbers (and align them)
    booktabs: bool = False  # LaTeX rules from the booktabs package (only without escape)
    records: bool = False  # too wide for the terminal: one record per row, not split parts
    csv_newline: str = "\n"


REPORT = Style()
BENCH = Style(escape=False, align=False)
LISTING = Style(
    escape=False, align=False, numparse=True, booktabs=True, records=True, csv_newline="\r\n"
)


@dataclass
class Table:
    """Display strings for people plus flat scalar rows (or any JSON) for machines."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    data: list[dict[str, Any]] = field(default_factory=list)
    numeric: set[int] = field(default_factory=set)  # right-aligned column indices
    note: str = ""
    json_obj: Any = None
    keys: int = 1  # leading label columns, repeated in every part of a split terminal table
    style: Style = REPORT
    # Sizes of consecutive column groups after the keys (one metric's value, reference,
    # ratio and verdict): a split terminal table keeps each group in one part.
    groups: tuple[int, ...] = ()


def _terminal(table: Table, width: int | None) -> str:
    from normbench.report.width import fit_table, stack_records

    # Without an explicit width the table fits the current one (``--wide`` or 100 columns).
    kwargs: dict[str, Any] = {} if width is None else {"width": width}
    if table.style.records:
        return stack_records(table.columns, table.rows, **kwargs)
    return fit_table(
        table.title,
        table.columns,
        table.rows,
        table.numeric,
        table.note,
        keys=table.keys,
        groups=table.groups,
        **kwargs,
    )


def _latex_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch in "^~":
            out.append({"^": r"\^{}", "~": r"\~{}"}[ch])
        else:
            out.append(
                {
                    "±": r"$\pm$",
                    "×": r"$\times$",
                    "—": "--",
                    "–": "--",
                    "%": r"\%",
                    "≥": r"$\geq$",
                    ">": r"$>$",
                }.get(ch, ch)
            )
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` on one line: every line break (``\\n``, ``\\r``, U+2028, …) becomes a space."""
    return " ".join(str(text).splitlines()) if text else ""


def markdown_text(text: str) -> str:
    """A paragraph, heading or list item of a markdown document, inert: one line (a value
    with a newline cannot start a heading, a list or a raw HTML block), no ``<`` (no tag,
    comment or script can open; ``&lt;`` renders as the character) and no ``$`` that GitHub
    would read as the start of a formula (``\\$``; backslashes themselves escaped first)."""
    return one_line(text).replace("\\", "\\\\").replace("<", "&lt;").replace("$", r"\$")


def _markdown_escape(text: str) -> str:
    # Backslashes are escaped first (markdown_text): ``a\\|b`` would otherwise end the cell at
    # the pipe.
    return markdown_text(text).replace("|", r"\|")


def _tabulate(table: Table, tablefmt: str, escape: Callable[[str], str] | None) -> str:
    """``escape`` applies to every cell and header (None: tabulate's own escaping, if any)."""
    from tabulate import tabulate

    style = table.style
    esc = escape or str
    align = ["right" if i in table.numeric else "left" for i in range(len(table.columns))]
    return tabulate(
        [[esc(c) for c in r] for r in table.rows],
        headers=[esc(c) for c in table.columns],
        tablefmt=tablefmt,
        colalign=align if style.align else None,
        disable_numparse=not style.numparse,
    )


def _markdown(table: Table, width: int | None) -> str:
    # Every style escapes here: a pipe, a newline or a tag in a value must not forge a
    # column, a row or markup in any table someone pastes into a document.
    return _tabulate(table, "github", _markdown_escape) + "\n"


def _latex(table: Table, width: int | None) -> str:
    if not table.style.escape:  # tabulate's plain latex formats escape the specials
        fmt = "latex_booktabs" if table.style.booktabs else "latex"
        return _tabulate(table, fmt, one_line) + "\n"
    comment = f"% {one_line(table.title)}\n" if table.title else ""
    return comment + _tabulate(table, "latex_raw", lambda c: _latex_escape(one_line(c))) + "\n"


# A spreadsheet reads a cell starting with one of these as a formula (``=HYPERLINK(…)``,
# ``@SUM(…)``, ``-2+3``), or strips the tab/CR and then does.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: Any) -> Any:
    """One CSV cell: a text that a spreadsheet would run as a formula gets a leading
    apostrophe (the usual neutraliser, shown as text); numbers, and texts that are plain
    numbers such as ``-0.5``, stay as they are."""
    # A nested mapping (a bench record's resolved spec) stays one cell: compact JSON.
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _is_number_text(value):
        return "'" + value
    return value


def _csv(table: Table, width: int | None) -> str:
    buf = io.StringIO()
    cols = list(dict.fromkeys(k for d in table.data for k in d))
    if not cols and table.style.csv_newline != "\n":
        return ""  # listings print nothing for an empty registry, not an empty header line
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator=table.style.csv_newline)
    w.writerow({k: csv_cell(k) for k in cols})  # column names come from data too
    for d in table.data:
        w.writerow({k: "" if d.get(k) is None else csv_cell(d.get(k)) for k in cols})
    return buf.getvalue()


def _json(table: Table, width: int | None) -> str:
    obj = table.json_obj if table.json_obj is not None else table.data
    # default=str: a path or timestamp inside a document is written as text, not refused.
    return json.dumps(obj, indent=2, default=str) + "\n"


# Adding an output format is one function above and one entry here: ``--format`` of every
# command offers the keys, in this order.
RENDERERS: dict[str, Callable[[Table, int | None], str]] = {
    "table": _terminal,
    "markdown": _markdown,
    "csv": _csv,
    "json": _json,
    "latex": _latex,
}
FORMATS: tuple[str, ...] = tuple(RENDERERS)
# Formats written for a person to read (the others are parsed by programs).
HUMAN_FORMATS: tuple[str, ...] = ("table", "markdown")

# The ``--format`` choices as Typer needs them (a str Enum); ``report`` adds Parquet.
Format = Enum("Format", {f: f for f in FORMATS}, type=str)  # type: ignore[misc]
ReportFormat = Enum(  # type: ignore[misc]
    "ReportFormat", {f: f for f in (*FORMATS, "parquet")}, type=str
)


def check_format(fmt: str) -> str:
    """``fmt`` as a plain name (an Enum member gives its value); unknown names are an error."""
    name = str(getattr(fmt, "value", fmt))
    if name not in RENDERERS:
        raise InputError(unknown("format", name, FORMATS))
    return name


def render(table: Table, fmt: str, width: int | None = None) -> str:
    """The table in one of ``FORMATS``, ending with a newline (``width``: terminal columns)."""
    return RENDERERS[check_format(fmt)](table, width)


def to_html(table: Table, sortable: bool = False) -> str:
    """A plain HTML table (escaped), for the self-contained report (sortable: by its script)."""
    e = html.escape
    head = "".join(
        f'<th class="{"num" if i in table.numeric else ""}">{e(c)}</th>'
        for i, c in enumerate(table.columns)
    )
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in table.numeric else ""}">{e(c)}</td>'
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in table.rows
    )
    note = f'<p class="note">{e(table.note)}</p>' if table.note else ""
    cls = ' class="sortable"' if sortable else ""
    return (
        f'<div class="table-wrap"><table{cls}><caption>{e(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>{note}"
    )


__all__ = [
    "BENCH",
    "FORMATS",
    "HUMAN_FORMATS",
    "LISTING",
    "RENDERERS",
    "REPORT",
    "Format",
    "ReportFormat",
    "Style",
    "Table",
    "check_format",
    "csv_cell",
    "markdown_text",
    "one_line",
    "render",
    "to_html",
]
