"""File-based datasets: directory formats (IDX, CIFAR-10 binary), lookup, download; .npz, .pt."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normbench.data.cache import cache_root
from normbench.data.download import DownloadError, Remote, download_all, offline
from normbench.data.formats import ARRAY_KEYS, read_arrays, read_cifar_batch, read_idx
from normbench.data.split import DataSplit
from normbench.errors import InputError
from normbench.limits import check_fits

MAX_INFERRED_CLASSES = 10_000  # beyond this, integer "labels" are surely regression targets

Parser = Callable[[dict, list[Path]], dict[str, np.ndarray]]  # (opts, files) → the four arrays


@dataclass(frozen=True)
class FileFormat:
    """The files a dataset directory holds and the parser that reads them: ``parse`` gets the
    found paths in the order of ``files``."""

    files: tuple[str, ...]
    parse: Parser
    gzip_ok: bool = False  # each file may be stored as <name>.gz; the uncompressed one wins
    subdir: str = ""  # also looked for in this subfolder (where an official archive unpacks to)

    def expected(self) -> str:
        """The file names, as error messages tell the user to provide them."""
        names = ", ".join(self.files)
        return f"{names} (each optionally .gz)" if self.gzip_ok else names

    def find(self, directory: Path) -> dict[str, Path | None]:
        """Each file name → its path in ``directory`` (or ``subdir``), or None."""
        folders = (directory, directory / self.subdir) if self.subdir else (directory,)
        suffixes = ("", ".gz") if self.gzip_ok else ("",)
        found: dict[str, Path | None] = {}
        for name in self.files:
            candidates = (folder / f"{name}{suffix}" for folder in folders for suffix in suffixes)
            found[name] = next((c for c in candidates if c.is_file()), None)
        return found


def expand_path(text: str) -> Path:
    """``~`` and ``$VARS`` expanded, relative paths taken from the working directory."""
    return Path(os.path.expandvars(text)).expanduser().absolute()


def default_dir(name: str) -> Path:
    """Where a dataset's files are looked for (and downloaded to) when no ``path`` is given."""
    return cache_root() / "raw" / name


def data_dir(name: str, opts: dict) -> tuple[Path, bool]:
    """The dataset directory and whether the user chose it (only the default one is
    downloaded into: normbench never writes into a directory the user named)."""
    if opts.get("path") is None:
        return default_dir(name), False
    return expand_path(opts["path"]), True


def system_data_root() -> Path:
    """Where distribution packages install datasets: ``$NORMBENCH_SYSTEM_DATASETS``, else
    ``/usr/share/datasets`` (Debian's ``dataset-*`` packages)."""
    explicit = os.environ.get("NORMBENCH_SYSTEM_DATASETS", "").strip()
    return Path(explicit).expanduser() if explicit else Path("/usr/share/datasets")


@dataclass(frozen=True)
class SystemPackage:
    """A distribution package that installs a dataset's files, read in place (never copied)."""

    package: str  # e.g. Debian's ``dataset-fashion-mnist``
    folder: str  # the folder it fills below :func:`system_data_root`

    def directory(self) -> Path:
        return system_data_root() / self.folder

    def install(self) -> str:
        """The command that installs it, as messages and `list datasets` give it."""
        return f"apt-get install {self.package}"


def _complete(fmt: FileFormat, directory: Path) -> list[Path] | None:
    found = fmt.find(directory)
    if any(p is None for p in found.values()):
        return None
    return [p for p in found.values() if p is not None]


def found_dir(name: str, fmt: FileFormat, system: SystemPackage | None) -> Path | None:
    """The folder holding every file of ``name`` without ``path:``: the cache, else the
    system package's folder; None when neither is complete."""
    folders = (default_dir(name), *((system.directory(),) if system else ()))
    return next((d for d in folders if _complete(fmt, d) is not None), None)


def files_present(name: str, fmt: FileFormat, system: SystemPackage | None = None) -> bool:
    """True when every file of ``name`` is found without ``path:`` (`list datasets`)."""
    return found_dir(name, fmt, system) is not None


def _download_blocker(opts: dict, remotes: tuple[Remote, ...]) -> str | None:
    if not remotes:
        return "normbench knows no place to download them from"
    if offline():
        return "downloading is off (NORMBENCH_OFFLINE is set)"
    if not opts.get("download", True):
        return "downloading is off (download: false)"
    return None


def locate(
    name: str,
    fmt: FileFormat,
    remotes: tuple[Remote, ...],
    opts: dict,
    system: SystemPackage | None = None,
) -> list[Path]:
    """The source files of ``name`` in the order of ``fmt.files``: from ``path:``, else the
    cache's default directory, else ``system``'s folder, else downloaded from ``remotes``
    into the cache; ``InputError`` naming the directory and the exact files otherwise."""
    directory, chosen = data_dir(name, opts)
    found = fmt.find(directory)
    missing = [f for f, p in found.items() if p is None]
    if not missing:
        return [p for p in found.values() if p is not None]
    if not chosen and system is not None:
        installed = _complete(fmt, system.directory())
        if installed is not None:
            return installed
    expected = fmt.expected()
    if chosen:
        if not directory.is_dir():
            raise InputError(
                f"{name} directory {directory} does not exist; it should hold {expected}."
            )
        raise InputError(
            f"{name} directory {directory} lacks {', '.join(missing)}; it should hold {expected}."
        )
    reason = _download_blocker(opts, remotes)
    if reason is None:
        try:
            download_all(remotes, directory)
        except (DownloadError, OSError) as exc:
            reason = f"could not be downloaded ({exc})"
        else:
            return locate(name, fmt, remotes, opts, system)
    package = f", install them ({system.install()} fills {system.directory()})" if system else ""
    raise InputError(
        f"{name} files are not in {directory} and {reason}; put {expected} there{package}, "
        "or set path: to a directory holding them."
    )


# --- MNIST / Fashion-MNIST -----------------------------------------------------------------------


def _idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images, 3), read_idx(labels, 1)
    if len(x) != len(y):
        raise InputError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels.")
    return x[:, None], y  # (N, 1, H, W) uint8, (N,) uint8


def build_idx(opts: dict, files: list[Path]) -> dict[str, np.ndarray]:
    """Parse the four IDX files; uint8 pixels are kept so the disk cache stays small."""
    x_train, y_train = _idx_pair(files[0], files[1])
    x_test, y_test = _idx_pair(files[2], files[3])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX = FileFormat(IDX_FILES, build_idx, gzip_ok=True)  # MNIST and the datasets copying it


def _scale_pixels(x: np.ndarray, binarize: bool) -> np.ndarray:
    out = x.astype(np.float32)
    np.divide(out, 255.0, out=out)  # [0, 1]
    if binarize:
        # Ioffe & Szegedy's MNIST net saw binary images: 1 where the scaled pixel is > 0.5.
        return (out > 0.5).astype(np.float32)
    return out


def finish_images(arrays: dict[str, np.ndarray], opts: dict) -> DataSplit:
    """uint8 (N, C, H, W) pixels → float32 in [0, 1] (optionally binarised), 10 classes."""
    binarize = bool(opts.get("binarize", False))
    return DataSplit(
        x_train=_scale_pixels(arrays["x_train"], binarize),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=_scale_pixels(arrays["x_test"], binarize),
        y_test=arrays["y_test"].astype(np.int64),
        task="classification",
        num_outputs=10,
        layout="image",
    )


# --- CIFAR-10 --------------------------------------------------------------------------------


def build_cifar(opts: dict, files: list[Path]) -> dict[str, np.ndarray]:
    """Parse data_batch_1..5.bin (train) and test_batch.bin (test), kept as uint8."""
    parts = [read_cifar_batch(f) for f in files[:5]]
    x_test, y_test = read_cifar_batch(files[5])
    return {
        "x_train": np.concatenate([p[0] for p in parts]),
        "y_train": np.concatenate([p[1] for p in parts]),
        "x_test": x_test,
        "y_test": y_test,
    }


CIFAR_FILES: tuple[str, ...] = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
CIFAR = FileFormat(CIFAR_FILES, build_cifar, subdir="cifar-10-batches-bin")


# --- .npz / .pt ------------------------------------------------------------------------------


def locate_file(opts: dict) -> list[Path]:
    """The single dataset file named by ``path``."""
    path = expand_path(opts["path"])
    if not path.exists():
        raise InputError(f"dataset file {path} does not exist.")
    if not path.is_file():
        raise InputError(f"{path} is not a file; npz needs an .npz or .pt file.")
    return [path]


def build_file(opts: dict, files: list[Path]) -> dict[str, np.ndarray]:
    """The four arrays of the .npz / .pt file."""
    return read_arrays(files[0])


LAYOUT_BY_RANK = {2: "vector", 3: "sequence", 4: "image"}


def _layout(x_train: np.ndarray, source: str) -> str:
    if x_train.ndim not in LAYOUT_BY_RANK:
        raise InputError(
            f"{source}: x_train has shape {x_train.shape}; expected rank 2 (N, F), "
            "3 (N, C, L) or 4 (N, C, H, W)."
        )
    return LAYOUT_BY_RANK[x_train.ndim]


def _is_integer(y: np.ndarray) -> bool:
    return np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_


def _class_labels(name: str, y: np.ndarray, source: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(
            f"{source}: {name} has shape {y.shape}; classification needs one label per sample "
            "(or set task: regression)."
        )
    if not _is_integer(y):
        fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            first = int(np.argmax(fractional))
            raise InputError(
                f"{source}: {name} has non-integer label {y[first]} at index {first}; "
                "classification needs integer labels (or set task: regression)."
            )
    return y.astype(np.int64)


def _targets(name: str, y: np.ndarray, source: str) -> np.ndarray:
    if y.ndim == 1:
        y = y[:, None]  # (N,) → (N, 1): regression targets are always (N, D)
    if y.ndim != 2:
        raise InputError(f"{source}: {name} has shape {y.shape}; regression needs (N,) or (N, D).")
    return y.astype(np.float32)


def build_custom(opts: dict, files: list[Path]) -> dict[str, np.ndarray]:
    """Call the user's loader (supervised) and turn what it returns into four numpy arrays."""
    from normbench.errors import OptionError
    from normbench.norms.catalog import resolve_target
    from normbench.usercode import UserCodeError, call

    target = opts["target"]
    what = f"custom dataset loader '{target}'"
    try:
        loader = resolve_target(target, what="custom dataset loader", accept="function")
    except OptionError as exc:
        raise InputError(f"dataset.target: {exc.message}.") from None
    out = call(what, loader, **(opts["options"] or {}))
    if isinstance(out, tuple | list) and len(out) == len(ARRAY_KEYS):
        out = dict(zip(ARRAY_KEYS, out, strict=True))
    if not isinstance(out, Mapping) or any(k not in out for k in ARRAY_KEYS):
        raise InputError(
            f"{what} returned {type(out).__name__}; expected a "
            f"mapping with {', '.join(ARRAY_KEYS)} or a tuple of those four arrays."
        )
    try:
        return {key: loaded_array(out[key], f"{what}: {key}") for key in ARRAY_KEYS}
    except UserCodeError as exc:  # e.g. a lazy array whose conversion runs the user's code
        raise InputError(str(exc)) from None


def _check_size(shape: tuple[int, ...], where: str) -> None:
    """InputError when an array of ``shape`` could not be held as float32 in memory."""
    try:
        check_fits(shape, 4, f"{where} has shape {tuple(shape)}: it", " as float32")
    except InputError as exc:
        raise InputError(f"{exc}.") from None


def _tensor_to_numpy(value: Any, where: str) -> np.ndarray:
    """A torch tensor as a numpy array (float16/bfloat16 widened to float32, sparse made
    dense); one InputError sentence for what has no data (meta) or no real numbers."""
    import torch  # already imported: ``value`` is a tensor

    shape = tuple(value.shape)
    if value.is_meta:
        raise InputError(
            f"{where} is a meta tensor of shape {shape}: it has a shape but no data; load "
            "the data onto the CPU."
        )
    if value.is_complex():
        raise InputError(f"{where} has dtype {value.dtype}; expected real numbers.")
    _check_size(shape, where)
    value = value.detach()
    if value.layout != torch.strided:
        value = value.to_dense()
    if value.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16; float32
        value = value.float()  # holds both exactly
    return value.cpu().contiguous().numpy()


def loaded_array(value: Any, where: str) -> np.ndarray:
    """One of a loader's arrays as a C-contiguous numpy array of real numbers (``where``
    names it in messages): tensors converted, sparse matrices made dense, sizes bounded."""
    if hasattr(value, "detach") and hasattr(value, "is_meta"):  # a torch tensor, torch not imported
        array = _tensor_to_numpy(value, where)
    else:
        if hasattr(value, "toarray") and hasattr(value, "shape"):  # a scipy sparse matrix
            _check_size(tuple(value.shape), where)
            value = value.toarray()
        if isinstance(value, np.ndarray):
            _check_size(value.shape, where)
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged lists, objects numpy cannot stack
            raise InputError(f"{where} is not an array: {exc}.") from None
    if np.iscomplexobj(array) or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise InputError(f"{where} has dtype {array.dtype}; expected real numbers.")
    _check_size(array.shape, where)
    return np.ascontiguousarray(array)


def finish_custom(arrays: dict[str, np.ndarray], opts: dict) -> DataSplit:
    """``finish_file`` for a loader's arrays, naming the loader in messages."""
    return finish_arrays(arrays, opts, f"custom dataset loader '{opts['target']}'")


def finish_file(arrays: dict[str, np.ndarray], opts: dict) -> DataSplit:
    """Decide task and layout from the arrays (or the ``task`` option) and convert dtypes."""
    return finish_arrays(arrays, opts, str(expand_path(opts["path"])))


def finish_arrays(arrays: dict[str, np.ndarray], opts: dict, source: str) -> DataSplit:
    """Task, layout and dtypes of the four arrays; ``source`` names them in messages."""
    layout = _layout(arrays["x_train"], source)
    task = opts["task"]
    if task == "auto":
        task = "classification" if _is_integer(arrays["y_train"]) else "regression"
    if task == "classification":
        y_train = _class_labels("y_train", arrays["y_train"], source)
        y_test = _class_labels("y_test", arrays["y_test"], source)
        classes = opts["num_classes"]
        if classes is None:
            classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
            if classes > MAX_INFERRED_CLASSES:
                raise InputError(
                    f"{source}: the largest label is {classes - 1}, which looks like a "
                    "regression target; set task: regression, or num_classes:."
                )
    else:
        y_train = _targets("y_train", arrays["y_train"], source)
        y_test = _targets("y_test", arrays["y_test"], source)
        if y_train.shape[1] != y_test.shape[1]:
            raise InputError(
                f"{source}: y_train has {y_train.shape[1]} targets per sample but y_test has "
                f"{y_test.shape[1]}."
            )
        classes = y_train.shape[1]
    return DataSplit(
        x_train=arrays["x_train"].astype(np.float32),
        y_train=y_train,
        x_test=arrays["x_test"].astype(np.float32),
        y_test=y_test,
        task=task,
        num_outputs=int(classes),
        layout=layout,
    )
