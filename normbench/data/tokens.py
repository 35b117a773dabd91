"""Token-sequence datasets: text for language modelling, associative recall, modular addition.

Every one has the ``tokens`` layout: ``x`` (N, T) holds token ids as float32 (exact below
2**24, so the training loop's float inputs carry them unchanged), ``y`` (N, T) the int64 label
of every position — the next token for text, and ``IGNORE_INDEX`` (F.cross_entropy's default
ignore_index) at positions that are not scored in the synthetic tasks. ``num_outputs`` is the
vocabulary size. What a report needs to know about the data (the text's fingerprint, the
vocabulary, the validation block, a task's loss floor) is in ``DataSplit.info``.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import numpy as np

from normbench.data.generators import Arrays
from normbench.data.sources import expand_path
from normbench.data.split import IGNORE_INDEX, DataSplit
from normbench.errors import InputError

INFO_KEY = "info"  # the arrays' JSON side-car (a 0-d str array): DataSplit.info
MANUAL = "the Python reference manual (pydoc_data.topics)"
BYTE_VOCAB = 256


# --- the text ------------------------------------------------------------------------------------


def python_manual() -> str:
    """CPython's reference-manual topics, joined in sorted key order (ships with every Python)."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def text_files(path: Path, pattern: str) -> list[Path]:
    """The file itself, or the files under a folder matching ``pattern`` (recursively, sorted,
    hidden files and folders skipped); ``InputError`` when there are none."""
    if not path.exists():
        raise InputError(f"text dataset path {path} does not exist.")
    if path.is_file():
        return [path]
    found = sorted(
        p
        for p in path.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not found:
        raise InputError(f"text dataset folder {path} holds no files matching '{pattern}'.")
    return found


def locate_text(opts: dict) -> list[Path]:
    """The source files of a ``text`` config; none for the Python manual."""
    if opts["path"] is None:
        return []
    return text_files(expand_path(opts["path"]), opts["pattern"])


def read_text(files: list[Path]) -> str:
    """The files' UTF-8 text, joined by newlines; ``InputError`` naming a bad or empty file."""
    parts = []
    for path in files:
        data = path.read_bytes()
        if not data:
            raise InputError(f"text file {path} is empty.")
        try:
            parts.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"text file {path} is not UTF-8 text (byte {exc.start} cannot be decoded)."
            ) from None
    return "\n".join(parts)


def describe_text(files: list[Path], opts: dict) -> str:
    """Where the text came from, for messages."""
    if not files:
        return f"text dataset ({MANUAL})"
    if len(files) == 1:
        return f"text file {files[0]}"
    return f"text folder {expand_path(opts['path'])}"


def encode(text: str, level: str) -> tuple[np.ndarray, int, str | None]:
    """(token ids, vocabulary size, the characters in id order or None for bytes)."""
    if level == "byte":
        return (
            np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64),
            BYTE_VOCAB,
            None,
        )
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocab = np.unique(codes)  # sorted: ids follow code-point order
    ids = np.searchsorted(vocab, codes).astype(np.int64)
    return ids, len(vocab), "".join(map(chr, vocab.tolist()))


def val_block(length: int, fraction: float, seed: int) -> tuple[int, int]:
    """(start, size) of the one contiguous validation block, its position drawn from ``seed``."""
    size = max(1, round(length * fraction))
    start = int(np.random.default_rng(seed).integers(0, length - size + 1))
    return start, size


def windows(ids: np.ndarray, context: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``context + 1`` tokens starting at multiples of ``stride``: inputs are
    its first T tokens, labels its last T (the next token at each position)."""
    if len(ids) < context + 1:
        return np.empty((0, context), np.float32), np.empty((0, context), np.int64)
    win = np.lib.stride_tricks.sliding_window_view(ids, context + 1)[::stride]
    return win[:, :-1].astype(np.float32), win[:, 1:].copy()  # copies: the view is read-only


def _too_short(source: str, part: str, tokens: int, context: int) -> InputError:
    return InputError(
        f"{source}: the {part} text has {tokens} tokens, too few for one window of context "
        f"{context} + 1; give a longer text, a smaller context or another val_fraction."
    )


def build_text(opts: dict, files: list[Path]) -> Arrays:
    """Windows of the text's token ids, split into a train part and one seeded validation block."""
    source = describe_text(files, opts)
    text = read_text(files) if files else python_manual()
    if not text:
        raise InputError(f"{source} is empty.")
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
    used = text if opts["limit_chars"] is None else text[: opts["limit_chars"]]
    ids, vocab_size, chars = encode(used, opts["level"])
    start, size = val_block(len(ids), opts["val_fraction"], opts["seed"])
    context, stride = opts["context"], opts["stride"] or opts["context"]
    val = ids[start : start + size]
    before, after = ids[:start], ids[start + size :]
    x_val, y_val = windows(val, context, stride)
    if not len(x_val):
        raise _too_short(source, "validation", len(val), context)
    # Windows never straddle the validation block: each side of it is cut on its own.
    parts = [windows(side, context, stride) for side in (before, after)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    if not len(x_train):
        raise _too_short(source, "training", max(len(before), len(after)), context)
    info: dict[str, Any] = {
        "source": MANUAL if not files else str(expand_path(opts["path"])),
        "files": len(files),
        "sha256": fingerprint,
        "chars": len(text),
        "chars_used": len(used),
        "level": opts["level"],
        "vocab_size": vocab_size,
        "tokens": len(ids),
        "context": context,
        "stride": stride,
        "val_start": start,
        "val_tokens": size,
        "train_windows": len(x_train),
        "val_windows": len(x_val),
    }
    if not files:
        info["python"] = platform.python_version()
    if chars is not None:
        info["vocab"] = chars
    return _with_info(
        {"x_train": x_train, "y_train": y_train, "x_test": x_val, "y_test": y_val}, info
    )


# --- synthetic tasks with a known optimum -------------------------------------------------------


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    train, test = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)


def recall_draw(
    rng: np.random.Generator, n: int, pairs: int, keys: int, values: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences k1 v1 … kP vP q (distinct keys, q one of them); the label at the query
    position is q's value, every other position ``IGNORE_INDEX``. Keys are ids 0..keys−1,
    values keys..keys+values−1."""
    key_ids = np.argsort(rng.random((n, keys)), axis=1)[:, :pairs]  # distinct keys per row
    value_ids = keys + rng.integers(0, values, (n, pairs))
    pick = rng.integers(0, pairs, n)
    rows = np.arange(n)
    x = np.empty((n, 2 * pairs + 1), dtype=np.int64)
    x[:, 0:-1:2], x[:, 1:-1:2], x[:, -1] = key_ids, value_ids, key_ids[rows, pick]
    y = np.full_like(x, IGNORE_INDEX)
    y[:, -1] = value_ids[rows, pick]
    return x.astype(np.float32), y


def build_assoc_recall(opts: dict, files: object = None) -> Arrays:
    """Associative recall: the answer is determined by the sequence, so the loss floor is 0."""
    train_rng, test_rng = _streams(opts["seed"])
    shape = (opts["pairs"], opts["keys"], opts["values"])
    x_train, y_train = recall_draw(train_rng, opts["num_train"], *shape)
    x_test, y_test = recall_draw(test_rng, opts["num_test"], *shape)
    info = {"loss_floor": 0.0, "vocab_size": opts["keys"] + opts["values"], "scored": 1}
    return _with_info(
        {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, info
    )


def modular_pairs(p: int) -> tuple[np.ndarray, np.ndarray]:
    """All p² sequences [a, b, =] (``=`` is token p) and their labels (−100, −100, a+b mod p)."""
    a, b = np.divmod(np.arange(p * p), p)
    x = np.stack([a, b, np.full_like(a, p)], axis=1)
    y = np.full_like(x, IGNORE_INDEX)
    y[:, -1] = (a + b) % p
    return x.astype(np.float32), y


def modular_train_size(opts: dict) -> int:
    """Training pairs at ``train_fraction`` (at least one, and one left for the test split)."""
    total = opts["modulus"] ** 2
    return min(total - 1, max(1, round(total * opts["train_fraction"])))


def build_modular_add(opts: dict, files: object = None) -> Arrays:
    """Power et al.'s grokking task: a seeded ``train_fraction`` of all p² pairs trains, the rest
    tests; the answer is determined, so the loss floor is 0."""
    x, y = modular_pairs(opts["modulus"])
    order = np.random.default_rng(opts["seed"]).permutation(len(x))
    n_train = modular_train_size(opts)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    info = {"loss_floor": 0.0, "vocab_size": opts["modulus"] + 1, "scored": 1}
    return _with_info(
        {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}, info
    )


# --- finishing ----------------------------------------------------------------------------------


def _with_info(arrays: Arrays, info: dict[str, Any]) -> Arrays:
    import json

    # A 0-d unicode array: np.savez stores it without pickling, so the disk cache keeps it.
    arrays[INFO_KEY] = np.array(json.dumps(info, sort_keys=True))
    return arrays


def finish_tokens(arrays: Arrays, opts: dict) -> DataSplit:
    """The split of a token dataset; ``num_outputs`` is the vocabulary size from its info."""
    import json

    info = json.loads(str(arrays[INFO_KEY]))
    return DataSplit(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        task="classification",
        num_outputs=int(info["vocab_size"]),
        layout="tokens",
        info=info,
    )
