"""Plain-text tables that fit a terminal: abbreviated headers, a legend, split into parts."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from normbench.naming import clip, cut, display_width, printable

# 100 columns is what a split editor pane or a CI log viewer shows without wrapping.
DEFAULT_WIDTH = 100
GAP = "  "
# Long metric names become short headers; the legend under the table spells them out.
ABBREVIATIONS = {
    "final_test_acc": "test acc",
    "best_test_acc": "best acc",
    "final_test_loss": "test loss",
    "best_test_loss": "best loss",
    "final_train_loss": "train loss",
    "steps_to_target": "steps→tgt",
    "seconds_to_target": "s→tgt",
    "samples_per_sec": "samples/s",
    "rel_ms_per_step": "rel ms/st",
    "ms_per_step": "ms/step",
    "train_seconds": "train s",
    "peak_memory_mb": "peak MB",
    "model_memory_mb": "model MB",
    "process_rss_mb": "RSS MB",
    "num_params": "params",
    "auc_test_loss": "auc test",
    "auc_train_loss": "auc train",
    "baseline (95 % CI)": "baseline",
    "candidate (95 % CI)": "candidate",
    "reference (95 % CI)": "reference",
    "variant (95 % CI)": "variant",
}

_width: ContextVar[int | None] = ContextVar("normbench_table_width", default=DEFAULT_WIDTH)


def current_width() -> int | None:
    """The width tables are fitted to; None means ``--wide`` (never split or abbreviated)."""
    return _width.get()


@contextmanager
def table_width(width: int | None) -> Iterator[None]:
    """Fit every table rendered inside the block to ``width`` columns (None: no limit)."""
    token = _width.set(width)
    try:
        yield
    finally:
        _width.reset(token)


def abbreviate(columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Short headers, and the legend entries (``short = long``) for the ones shortened."""
    short, legend = [], []
    for c in columns:
        s = ABBREVIATIONS.get(c, c)
        short.append(s)
        if s != c:
            legend.append(f"{s} = {c}")
    return short, legend


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def wrap_text(text: str, width: int) -> list[str]:
    """Greedy lines of at most ``width``, breaking after spaces or commas (variant names have
    no spaces: ``norm=batch,placement=pre`` breaks after the comma)."""
    lines: list[str] = []
    for part in text.split("\n"):
        line = ""
        for token in re.findall(r"[^ ,]+[ ,]*|[ ,]+", part):
            while display_width(token) > width:  # one token longer than the column: cut it
                if line:
                    lines.append(line.rstrip())
                    line = ""
                head, token = cut(token, width)
                lines.append(head)
            if display_width((line + token).rstrip()) > width:
                lines.append(line.rstrip())
                line = token.lstrip(" ")
            else:
                line += token
        lines.append(line.rstrip())
    return lines


def _cell_lines(text: str, width: int) -> list[str]:
    return [text] if display_width(text) <= width else wrap_text(text, width)


def _block(
    columns: list[str], rows: list[list[str]], numeric: set[int], widths: list[int]
) -> list[str]:
    """One table: header, rule, rows; text cells wrap within their column width."""

    def line(cells: list[str]) -> str:
        out = [_pad(c, w, i in numeric) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return GAP.join(out).rstrip()

    out = [line(columns), GAP.join("─" * w for w in widths)]
    for row in rows:
        wrapped = [_cell_lines(c, w) for c, w in zip(row, widths, strict=True)]
        for k in range(max(len(w) for w in wrapped)):
            out.append(line([w[k] if k < len(w) else "" for w in wrapped]))
    return out


def _natural(columns: list[str], rows: list[list[str]]) -> list[int]:
    return [
        max([display_width(c), *(display_width(r[i]) for r in rows)]) for i, c in enumerate(columns)
    ]


def column_groups(n_cols: int, keys: int, groups: Sequence[int] = ()) -> list[list[int]]:
    """The non-key column indices in groups that stay together (one column each by default)."""
    out: list[list[int]] = []
    i = keys
    for size in groups:
        if i >= n_cols:
            break
        out.append(list(range(i, min(i + size, n_cols))))
        i += size
    out += [[j] for j in range(i, n_cols)]
    return out


def _parts(widths: list[int], keys: int, width: int, groups: Sequence[int] = ()) -> list[list[int]]:
    """Greedy parts of the non-key column groups, each fitting next to the key columns."""
    key_w = sum(widths[:keys]) + len(GAP) * keys
    parts: list[list[int]] = []
    used = key_w
    fitted: list[list[int]] = []
    for group in column_groups(len(widths), keys, groups):
        wide = key_w + sum(widths[i] for i in group) + len(GAP) * (len(group) - 1) > width
        # A group that cannot fit next to the labels even alone is split after all.
        fitted += [[i] for i in group] if wide and len(group) > 1 else [group]
    for group in fitted:
        need = sum(widths[i] for i in group) + len(GAP) * (len(group) - 1)
        need += len(GAP) if parts and parts[-1] else 0
        if parts and used + need <= width:
            parts[-1] += group
            used += need
        else:
            parts.append(list(group))
            used = key_w + sum(widths[i] for i in group) + len(GAP) * (len(group) - 1)
    return parts or [[]]


def _fit_group(widths: list[int], group: list[int], numeric: set[int], room: int) -> None:
    """Narrow a group's text columns (widest first, not below 12) until the group fits."""
    while sum(widths[i] for i in group) + len(GAP) * (len(group) - 1) > room:
        text = [i for i in group if i not in numeric and widths[i] > 12]
        if not text:
            return
        widths[max(text, key=lambda i: widths[i])] -= 1


def fit_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: set[int] | None = None,
    note: str = "",
    keys: int = 1,
    width: int | None = -1,
    groups: Sequence[int] = (),
) -> str:
    """The table as text no wider than ``width`` (default: the current width, 100).

    Too wide, it is split into parts that repeat the first ``keys`` columns and keep each of
    ``groups`` (sizes of consecutive column groups after the keys) in one part; a text column
    that still does not fit wraps inside its cell. ``width=None`` keeps everything on one line.
    """
    width = current_width() if width == -1 else width
    numeric = set(numeric or ())
    cols = [printable(str(c)) for c in columns]
    body = [[printable(str(c)) for c in r] for r in rows]
    title, note = printable(title), printable(note)
    legend: list[str] = []
    if width is not None:
        cols, legend = abbreviate(cols)
    widths = _natural(cols, body)
    keys = min(keys, len(cols))
    total = sum(widths) + len(GAP) * (len(widths) - 1)
    parts = [list(range(keys, len(cols)))]
    if width is not None and total > width:
        # Numbers never wrap, so the widest one must fit next to the labels; text can wrap.
        widest = max([24, *(w for i, w in enumerate(widths) if i >= keys and i in numeric)])
        # Label columns that leave no room for one value column wrap too, widest first.
        while sum(widths[:keys]) + len(GAP) * keys + widest > width:
            text_keys = [i for i in range(keys) if i not in numeric and widths[i] > 12]
            if not text_keys:
                break
            i = max(text_keys, key=lambda k: widths[k])
            widths[i] -= 1
        key_w = sum(widths[:keys]) + len(GAP) * keys
        room = max(12, width - key_w)
        # A text column wider than the room wraps; numbers never do (they would be misread).
        widths = [w if i < keys or i in numeric else min(w, room) for i, w in enumerate(widths)]
        for group in column_groups(len(widths), keys, groups):
            _fit_group(widths, group, numeric, room)
        parts = _parts(widths, keys, width, groups)
    out = [title] if title else []
    for n, part in enumerate(parts):
        idx = list(range(keys)) + part
        if len(parts) > 1:
            out.append(f"({n + 1}/{len(parts)})" if n else f"(1/{len(parts)}, continued below)")
        out += _block(
            [cols[i] for i in idx],
            [[r[i] for i in idx] for r in body],
            {j for j, i in enumerate(idx) if i in numeric},
            [widths[i] for i in idx],
        )
        if n + 1 < len(parts):
            out.append("")
    notes = ([f"legend: {' · '.join(legend)}"] if legend else []) + ([note] if note else [])
    for text in notes:
        out += textwrap.wrap(text, width, break_on_hyphens=False) if width else [text]
    return "\n".join(out) + "\n"


def stack_records(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = -1
) -> str:
    """Text-heavy rows as records: the first cell as a heading, then ``key: value`` lines.

    A table whose cells are sentences is unreadable when split; one record per entry is not.
    Falls back to one plain table when it fits (or under ``--wide``).
    """
    width = current_width() if width == -1 else width
    table = fit_table("", columns, rows, width=None)
    if width is None or max_line_width(table) <= width:
        return table
    out: list[str] = []
    for row in rows:
        out.append(printable(str(row[0])))
        for key, value in zip(columns[1:], row[1:], strict=True):
            if str(value) == "":
                continue
            out += textwrap.wrap(
                printable(f"{key}: {value}"),
                width,
                initial_indent="  ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
        out.append("")
    return "\n".join(out)


def max_line_width(text: str) -> int:
    """The widest line of ``text`` in columns (what a terminal needs to show it unwrapped)."""
    return max((display_width(line) for line in text.splitlines()), default=0)


__all__ = [
    "DEFAULT_WIDTH",
    "abbreviate",
    "clip",
    "current_width",
    "display_width",
    "fit_table",
    "max_line_width",
    "printable",
    "stack_records",
    "table_width",
]
