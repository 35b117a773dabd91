"""Parsers for the on-disk formats: IDX (MNIST), CIFAR-10 binary, and .npz / .pt array files."""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from normbench.errors import InputError

IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one MNIST-style files use
CIFAR_IMAGE = (3, 32, 32)
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32×32 planes
ARRAY_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz``; ``InputError`` if unreadable."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"{path} is a truncated or corrupt gzip file ({exc}).") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}.") from None


def parse_idx(raw: bytes, ndim: int, path: Path) -> np.ndarray:
    """Decode an IDX file of unsigned bytes with ``ndim`` dimensions (3 images, 1 labels)."""
    expected_magic = bytes([0, 0, IDX_UBYTE, ndim])
    if raw[:4] != expected_magic:
        raise InputError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes: magic number "
            f"0x{raw[:4].hex() or 'empty'} instead of 0x{expected_magic.hex()}."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{path} is truncated: {len(raw)} bytes is shorter than its header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise InputError(
            f"{path} is truncated or corrupt: {len(raw)} bytes where its header {list(dims)} "
            f"promises {expected}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read and decode one IDX file (optionally gzipped)."""
    return parse_idx(read_bytes(path), ndim, path)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch → uint8 images (N, 3, 32, 32) and uint8 labels (N,)."""
    raw = read_bytes(path)
    if not raw or len(raw) % CIFAR_RECORD:
        raise InputError(
            f"{path} is truncated or corrupt: {len(raw)} bytes is not a whole number of "
            f"{CIFAR_RECORD}-byte CIFAR-10 records."
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        first = int(np.argmax(labels > 9))
        raise InputError(
            f"{path} is corrupt: record {first} has label byte {int(labels[first])}, "
            "not a CIFAR-10 class 0..9."
        )
    return records[:, 1:].reshape(-1, *CIFAR_IMAGE), labels


def _read_npz(path: Path) -> Mapping[str, np.ndarray]:
    try:
        # allow_pickle=False: a dataset file must never be able to run code.
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} could not be read as an .npz archive: {exc}.") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(
            f"{path} holds a single array; expected an .npz archive with keys "
            f"{', '.join(ARRAY_KEYS)}."
        )
    with loaded:
        try:
            return {key: loaded[key] for key in loaded.files if key in ARRAY_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path} is a corrupt .npz archive: {exc}.") from None


def _tensor_to_numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
        return value.numpy()
    return value


def _read_pt(path: Path) -> Mapping[str, Any]:
    import torch  # lazily: only .pt files need it

    try:
        # weights_only=True: only tensors and plain containers, never arbitrary objects.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{path} could not be read with torch.load(weights_only=True): {first_line}"
        ) from None
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{path} holds a {type(obj).__name__}; expected a dict with keys "
            f"{', '.join(ARRAY_KEYS)}."
        )
    return {k: _tensor_to_numpy(v) for k, v in obj.items() if k in ARRAY_KEYS}


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an .npz (or .pt / .pth) dataset file, as numpy arrays."""
    raw = _read_pt(path) if path.suffix in (".pt", ".pth") else _read_npz(path)
    missing = [k for k in ARRAY_KEYS if k not in raw]
    if missing:
        raise InputError(
            f"{path} lacks {', '.join(missing)}; a dataset file needs the keys "
            f"{', '.join(ARRAY_KEYS)}."
        )
    out: dict[str, np.ndarray] = {}
    for key in ARRAY_KEYS:
        array = np.asarray(raw[key])
        if not (
            np.issubdtype(array.dtype, np.integer)
            or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_
        ):
            raise InputError(f"{path}: {key} has dtype {array.dtype}; expected real numbers.")
        out[key] = array
    return out
