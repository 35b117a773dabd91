"""Dataset registry (numpy only): option resolution, cached loading, views and the listing."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from normbench.data import sources as src
from normbench.data.cache import (
    CACHE_FORMAT,
    Memo,
    cache_root,
    digest,
    file_signature,
    read_npz,
    write_npz_atomic,
)
from normbench.data.catalog import COMMON_OPTIONS, DATASETS, Arrays, DatasetEntry
from normbench.data.domains import join_domains
from normbench.data.formats import ARRAY_KEYS
from normbench.data.split import DataSplit, check_split, fingerprint, normalize_inputs
from normbench.data.views import check_layout, view_for_model
from normbench.errors import OptionError, unknown
from normbench.options import fill

# Nothing here may import torch, mnist1d or sklearn at module import: `normbench list`,
# `validate` and `--help` must stay instant. A test checks it in a fresh interpreter.

__all__ = [
    "COMMON_OPTIONS",
    "DATASETS",
    "DataSplit",
    "DatasetEntry",
    "build_counts",
    "cache_path",
    "check_pairing",
    "clear_memo",
    "dataset_rows",
    "load_dataset",
    "resolve_dataset",
    "train_size",
    "view_for_model",
]

LIMIT_SEED = 20150211  # fixed: limit_train/limit_test pick the same subset in every run


# --- resolution --------------------------------------------------------------------------------


def resolve_dataset(cfg: Mapping[str, Any] | str) -> dict:
    """Validate a dataset config and fill every option with its default (idempotent).

    A bare string is taken as ``{"name": ...}``. ``OptionError`` (with the key path below the
    dataset mapping) for an unknown name or option, a wrong type or a bad value.
    """
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if not isinstance(cfg, Mapping):
        raise OptionError(f"must be a mapping with a name:, got {type(cfg).__name__}")
    if "name" not in cfg:
        raise OptionError(f"is required (choose from {', '.join(DATASETS)})", ("name",))
    name = cfg["name"]
    if not isinstance(name, str) or name not in DATASETS:
        raise OptionError(unknown("dataset", name, list(DATASETS)), ("name",))
    entry = DATASETS[name]
    given = {k: v for k, v in cfg.items() if k != "name"}
    opts = fill(name, entry.all_options(), given, known=("name",))
    if entry.check is not None:
        entry.check(opts, set(given))
    return {"name": name, **opts}


def check_pairing(dataset_name: str, model_kind: str) -> None:
    """Torch-free: ``OptionError`` when ``model_kind`` cannot take the dataset's static
    layout (vector data with a cnn or rnn); ``npz`` ("any") is only checked when loaded."""
    if dataset_name not in DATASETS:
        raise OptionError(unknown("dataset", dataset_name, list(DATASETS)))
    check_layout(dataset_name, DATASETS[dataset_name].layout, model_kind)


# --- loading -----------------------------------------------------------------------------------

_MEMO: Memo[DataSplit] = Memo(size=4)
_BUILDS: Counter[str] = Counter()


def clear_memo() -> None:
    """Forget the in-process memo (the next load reads the disk cache)."""
    _MEMO.clear()


def build_counts() -> dict[str, int]:
    """How many times each dataset was actually built (parsed/generated) in this process."""
    return dict(_BUILDS)


@functools.cache
def _package_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _build_key(entry: DatasetEntry, opts: dict, files: list[Path]) -> str:
    keys = entry.cache_keys if entry.cache_keys is not None else [o.name for o in entry.options]
    return digest(
        {
            "dataset": entry.name,
            "version": entry.version,
            "format": CACHE_FORMAT,
            "options": {k: opts[k] for k in keys},
            "files": file_signature(files),
            "packages": {p: _package_version(p) for p in entry.packages},
        }
    )


def cache_path(name: str, build_key: str) -> Path:
    """Where the built arrays of dataset ``name`` with ``build_key`` are cached."""
    return cache_root() / "datasets" / f"{name}-{build_key}.npz"


def _built_arrays(entry: DatasetEntry, opts: dict, files: list[Path], key: str) -> Arrays:
    path = cache_path(entry.name, key)
    if entry.disk_cache:
        arrays = read_npz(path)
        if arrays is not None and all(k in arrays for k in ARRAY_KEYS):
            return arrays
    _BUILDS[entry.name] += 1
    arrays = entry.build_arrays(opts, files)
    if entry.disk_cache:
        write_npz_atomic(path, arrays)
    return arrays


def _subset(n: int, limit: int | None, salt: int) -> np.ndarray | None:
    if limit is None or limit >= n:
        return None
    picks = np.random.default_rng([LIMIT_SEED, salt]).choice(n, size=limit, replace=False)
    return np.sort(picks)  # keep the file's order


def _apply_limits(arrays: Arrays, opts: dict) -> Arrays:
    out = dict(arrays)
    for salt, part in enumerate(("train", "test")):
        x, y = out[f"x_{part}"], out[f"y_{part}"]
        if len(x) != len(y):
            continue  # check_split reports the mismatch with the source named
        index = _subset(len(x), opts[f"limit_{part}"], salt)
        if index is not None:
            out[f"x_{part}"], out[f"y_{part}"] = x[index], y[index]
    return out


def _prepare(entry: DatasetEntry, opts: dict, files: list[Path], key: str) -> DataSplit:
    arrays = _apply_limits(_built_arrays(entry, opts, files, key), opts)
    split = entry.finish(arrays, opts)
    check_split(split, entry.describe_source(files, opts))
    split = join_domains(normalize_inputs(split, opts["input_norm"]), opts)
    # Digested where the arrays are built: the process that trains on them can then tell
    # whether its data are the ones pre-flight checked (a loader may differ per process).
    return replace(split, fingerprint=fingerprint(split))


def load_dataset(cfg: Mapping[str, Any] | str) -> DataSplit:
    """Resolve ``cfg`` and return its train/test arrays, with ``input_norm`` applied.

    Built arrays are cached on disk (``cache_path``) and whole splits memoised in-process;
    the returned arrays may be shared, so treat them as read-only. ``OptionError`` for a bad
    config, ``InputError`` (one sentence) for missing or bad data files.
    """
    opts = resolve_dataset(cfg)
    entry = DATASETS[opts["name"]]
    files = entry.locate(opts)
    key = _build_key(entry, opts, files)
    memo_key = digest([key, opts])
    split = _MEMO.get(memo_key)
    if split is None:
        split = _prepare(entry, opts, files, key)
        _MEMO.put(memo_key, split)
    return replace(split)  # a fresh container, so callers may rebind fields freely


def train_size(cfg: Mapping[str, Any]) -> int:
    """Size of the training split a dataset config gives, after ``limit_train`` and
    ``domains``: from the options where they fix it, else by loading the data (numpy only)."""
    opts = resolve_dataset(cfg)
    n = DATASETS[opts["name"]].train_size(opts)
    if n is None:
        return int(load_dataset(opts).x_train.shape[0])
    if opts["limit_train"] is not None:
        n = min(n, opts["limit_train"])
    return n * opts["domains"]


# --- listing -----------------------------------------------------------------------------------


def _availability_note(entry: DatasetEntry, available: bool) -> str:
    system = entry.system
    if available:
        if system is None or entry.files is None:
            return ""
        home = src.found_dir(entry.name, entry.files, system)
        return f"found in {home}" if home == system.directory() else ""
    if system is not None:
        return (
            f"not installed: {system.install()} (Debian) fills {system.directory()}; "
            f"else downloaded into {src.default_dir(entry.name)} on first use"
        )
    if entry.extra:
        return f"pip install 'normbench[{entry.extra}]'"
    if entry.downloads:
        return f"not in {src.default_dir(entry.name)}; downloaded there on first use"
    if entry.files is not None:
        return f"not in {src.default_dir(entry.name)}; put the files there or set path:"
    return "a required package is missing"


def dataset_rows() -> list[dict[str, Any]]:
    """One row per dataset for `normbench list datasets` (COMMON_OPTIONS apply to all)."""
    rows = []
    for entry in DATASETS.values():
        ok = entry.available()
        rows.append(
            {
                "name": entry.name,
                "summary": entry.summary,
                "task": entry.task,
                "layout": entry.layout,
                "shapes": entry.shapes,
                "size": entry.size,
                "options": ", ".join(o.describe() for o in entry.options),
                "extra": entry.extra,
                "available": ok,
                "note": _availability_note(entry, ok),
            }
        )
    return rows


def load_split(config: dict[str, Any]) -> DataSplit:
    """A variant's data, viewed for its model kind (cached on disk like ``load_dataset``)."""
    return view_for_model(load_dataset(config["dataset"]), config["model"]["kind"])
