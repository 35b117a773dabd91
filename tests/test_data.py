"""Tests for normbench.data: loaders on small real-format files, errors, cache, views, leakage."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, subprocess_env

from normbench.data import generators, registry
from normbench.data.cache import cache_root
from normbench.data.download import Remote, md5sum
from normbench.data.registry import (
    DATASETS,
    build_counts,
    check_pairing,
    clear_memo,
    dataset_rows,
    load_dataset,
    resolve_dataset,
    view_for_model,
)
from normbench.data.sources import IDX_FILES
from normbench.errors import InputError, OptionError

CIFAR_NAMES = [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache, no system datasets and no network."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NORMBENCH_CACHE", str(root))
    monkeypatch.setenv("NORMBENCH_SYSTEM_DATASETS", str(tmp_path / "system"))
    monkeypatch.setenv("NORMBENCH_OFFLINE", "1")
    clear_memo()
    yield root
    clear_memo()


# --- writers for the real formats ------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_dir(
    directory: Path, gz: bool = False, n_train: int = 6, n_test: int = 4, seed: int = 0
) -> dict[str, np.ndarray]:
    """Tiny MNIST-format files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        write_file(directory / (stem + (".gz" if gz else "")), idx_bytes(array))
    return arrays


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    records = np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1)
    return records.astype(np.uint8).tobytes()


def write_cifar_dir(directory: Path, per_file: int = 2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    written = {}
    for name in CIFAR_NAMES:
        images = rng.integers(0, 256, (per_file, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_file, dtype=np.uint8)
        write_file(directory / name, cifar_bytes(images, labels))
        written[name] = (images, labels)
    return written


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def simple_arrays(n_train: int = 20, n_test: int = 10, shape: tuple[int, ...] = (3,)) -> dict:
    rng = np.random.default_rng(2)
    return {
        "x_train": rng.standard_normal((n_train, *shape)).astype(np.float32),
        "y_train": rng.integers(0, 3, n_train),
        "x_test": rng.standard_normal((n_test, *shape)).astype(np.float32),
        "y_test": rng.integers(0, 3, n_test),
    }


# --- torch-free import ---------------------------------------------------------------------------


def test_registry_imports_no_torch_mnist1d_or_sklearn():
    code = (
        "import sys\n"
        "from normbench.data.registry import dataset_rows, resolve_dataset, check_pairing\n"
        "dataset_rows(); resolve_dataset({'name': 'mnist1d'}); check_pairing('mnist', 'cnn')\n"
        "bad = [m for m in ('torch', 'mnist1d', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- mnist1d --------------------------------------------------------------------------------------


def test_mnist1d_default_generator_reproduces_published_facts():
    split = load_dataset({"name": "mnist1d"})
    assert split.x_train.shape == (4000, 40) and split.x_test.shape == (1000, 40)
    assert np.bincount(split.y_train).tolist() == [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    assert (split.task, split.num_outputs, split.layout) == ("classification", 10, "sequence")
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64


def test_mnist1d_defaults_match_the_installed_generator():
    from mnist1d.data import get_dataset_args

    theirs = get_dataset_args(as_dict=True)
    ours = DATASETS["mnist1d"].defaults()
    for key in generators.MNIST1D_DEFAULTS:
        assert ours[key] == theirs[key], key


def test_mnist1d_shuffled_is_a_fixed_permutation_of_the_same_data():
    plain = load_dataset({"name": "mnist1d", "num_samples": 200})
    shuffled = load_dataset({"name": "mnist1d", "num_samples": 200, "shuffle_seq": True})
    assert not np.allclose(plain.x_train, shuffled.x_train)
    np.testing.assert_allclose(np.sort(plain.x_train, 1), np.sort(shuffled.x_train, 1), atol=1e-6)
    np.testing.assert_array_equal(plain.y_train, shuffled.y_train)


def test_mnist1d_leaves_the_global_rngs_alone():
    import random

    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    load_dataset({"name": "mnist1d", "num_samples": 100})
    assert (np.random.rand(), random.random()) == expected


# --- MNIST / Fashion-MNIST (IDX) ------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_loader_scales_pixels(tmp_path, gz, name):
    arrays = write_idx_dir(tmp_path / "idx", gz=gz)
    split = load_dataset({"name": name, "path": str(tmp_path / "idx")})
    assert split.x_train.shape == (6, 1, 28, 28) and split.x_test.shape == (4, 1, 28, 28)
    assert split.x_train.dtype == np.float32
    np.testing.assert_allclose(
        split.x_train[:, 0], arrays["train-images-idx3-ubyte"] / 255.0, rtol=1e-6
    )
    np.testing.assert_array_equal(split.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert split.layout == "image" and split.num_outputs == 10


def test_idx_binarize_thresholds_at_half(tmp_path):
    arrays = write_idx_dir(tmp_path / "idx")
    split = load_dataset({"name": "mnist", "path": str(tmp_path / "idx"), "binarize": True})
    assert set(np.unique(split.x_train)) <= {0.0, 1.0}
    expected = (arrays["train-images-idx3-ubyte"] / 255.0 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(split.x_train[:, 0], expected)


def test_limit_train_and_test_pick_a_fixed_subset(tmp_path):
    write_idx_dir(tmp_path / "idx")
    cfg = {"name": "mnist", "path": str(tmp_path / "idx"), "limit_train": 3, "limit_test": 2}
    full = load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})
    first = load_dataset(cfg)
    clear_memo()
    second = load_dataset(cfg)
    assert len(first.x_train) == 3 and len(first.x_test) == 2
    np.testing.assert_array_equal(first.x_train, second.x_train)
    rows = {full.x_train[i].tobytes() for i in range(len(full.x_train))}
    assert all(x.tobytes() in rows for x in first.x_train)


def test_idx_directory_missing(tmp_path):
    with pytest.raises(InputError, match=r"does not exist.*train-images-idx3-ubyte"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "nope")})


def test_idx_one_file_missing_is_named(tmp_path):
    write_idx_dir(tmp_path / "idx")
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match=r"lacks t10k-labels-idx1-ubyte;"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_idx_wrong_magic_number(tmp_path):
    write_idx_dir(tmp_path / "idx")
    path = tmp_path / "idx" / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])  # claims 3-d
    with pytest.raises(InputError, match="magic number 0x00000803 instead of 0x00000801"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_idx_truncated_file(tmp_path):
    write_idx_dir(tmp_path / "idx")
    path = tmp_path / "idx" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_idx_truncated_gzip(tmp_path):
    write_idx_dir(tmp_path / "idx", gz=True)
    path = tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_idx_image_and_label_counts_differ(tmp_path):
    write_idx_dir(tmp_path / "idx")
    write_file(tmp_path / "idx" / "train-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(InputError, match=r"holds 6 images but .* holds 5 labels"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_idx_label_out_of_range(tmp_path):
    write_idx_dir(tmp_path / "idx")
    write_file(tmp_path / "idx" / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 12, 3])))
    with pytest.raises(InputError, match="y_test has label 12 at index 2"):
        load_dataset({"name": "mnist", "path": str(tmp_path / "idx")})


def test_offline_without_files_names_directory_and_files(cache):
    with pytest.raises(InputError) as err:
        load_dataset({"name": "mnist"})
    message = str(err.value)
    assert str(cache / "raw" / "mnist") in message and "NORMBENCH_OFFLINE" in message
    assert all(stem in message for stem in IDX_FILES)


def test_download_false_disables_download(monkeypatch):
    monkeypatch.delenv("NORMBENCH_OFFLINE")
    with pytest.raises(InputError, match=r"download: false.*data_batch_1\.bin"):
        load_dataset({"name": "cifar10", "download": False})


# --- Fashion-MNIST from Debian's dataset-fashion-mnist package ------------------------------------

DEBIAN_DATASETS = Path("/usr/share/datasets")


def test_fashion_mnist_found_in_the_system_package_folder(tmp_path):
    arrays = write_idx_dir(tmp_path / "system" / "fashion-mnist", gz=True)
    assert DATASETS["fashion-mnist"].available()
    split = load_dataset({"name": "fashion-mnist"})
    np.testing.assert_array_equal(split.y_train, arrays["train-labels-idx1-ubyte"])
    note = {r["name"]: r["note"] for r in dataset_rows()}["fashion-mnist"]
    assert note == f"found in {tmp_path / 'system' / 'fashion-mnist'}"
    assert not DATASETS["mnist"].available()  # no system package is known for MNIST


def test_fashion_mnist_in_the_cache_wins_over_the_system_folder(tmp_path, cache):
    write_idx_dir(tmp_path / "system" / "fashion-mnist", seed=1)
    cached = write_idx_dir(cache / "raw" / "fashion-mnist", seed=2)
    split = load_dataset({"name": "fashion-mnist"})
    np.testing.assert_array_equal(split.y_train, cached["train-labels-idx1-ubyte"])
    assert {r["name"]: r["note"] for r in dataset_rows()}["fashion-mnist"] == ""


def test_fashion_mnist_path_given_never_falls_back_to_the_system_folder(tmp_path):
    write_idx_dir(tmp_path / "system" / "fashion-mnist")
    write_idx_dir(tmp_path / "mine")
    (tmp_path / "mine" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(InputError, match=r"lacks t10k-images-idx3-ubyte;"):
        load_dataset({"name": "fashion-mnist", "path": str(tmp_path / "mine")})


def test_fashion_mnist_incomplete_system_folder_says_how_to_install(tmp_path, cache):
    write_idx_dir(tmp_path / "system" / "fashion-mnist")
    (tmp_path / "system" / "fashion-mnist" / "train-labels-idx1-ubyte").unlink()
    assert not DATASETS["fashion-mnist"].available()
    with pytest.raises(InputError) as err:
        load_dataset({"name": "fashion-mnist"})
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "system" / "fashion-mnist") in message
    assert str(cache / "raw" / "fashion-mnist") in message and "NORMBENCH_OFFLINE" in message


def test_list_datasets_says_how_to_install_fashion_mnist(tmp_path):
    env = subprocess_env(
        NORMBENCH_CACHE=str(tmp_path / "cache"),
        NORMBENCH_SYSTEM_DATASETS=str(tmp_path / "empty"),
    )
    out = run_cli("list", "datasets", env=env, check=True).stdout
    block = out[out.index("fashion-mnist\n") : out.index("cifar10\n")]
    assert "available: False" in block
    assert "apt-get install dataset-fashion-mnist" in " ".join(block.split())


def test_fashion_mnist_from_the_real_debian_package(monkeypatch):
    """The package's files as installed: 60,000 / 10,000 images, 6,000 / 1,000 per class."""
    if not (DEBIAN_DATASETS / "fashion-mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail("dataset-fashion-mnist is required in CI (apt-get install it)")
        pytest.skip("apt-get install dataset-fashion-mnist to run this; CI is not set")
    monkeypatch.delenv("NORMBENCH_SYSTEM_DATASETS")
    split = load_dataset({"name": "fashion-mnist"})
    assert split.x_train.shape == (60_000, 1, 28, 28) and split.x_test.shape == (10_000, 1, 28, 28)
    assert np.bincount(split.y_train).tolist() == [6000] * 10
    assert np.bincount(split.y_test).tolist() == [1000] * 10
    assert split.x_train.min() >= 0.0 and split.x_train.max() == 1.0
    # Fashion-MNIST's mean pixel (0.2860 train); MNIST's is 0.1307, so the files are not MNIST.
    assert abs(float(split.x_train.mean()) - 0.2860) < 1e-3


def _mirror_remotes(mirror: Path, md5: str | None = None) -> tuple[Remote, ...]:
    return tuple(
        Remote(f"{stem}.gz", md5 or md5sum(mirror / f"{stem}.gz"), (mirror.as_uri() + "/",))
        for stem in IDX_FILES
    )


def _serve(monkeypatch: pytest.MonkeyPatch, name: str, remotes: tuple[Remote, ...]) -> None:
    """Point dataset ``name``'s download source at ``remotes``."""
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], remotes=remotes))


def test_download_from_a_mirror_into_the_cache(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("NORMBENCH_OFFLINE")
    arrays = write_idx_dir(tmp_path / "mirror", gz=True)
    _serve(monkeypatch, "mnist", _mirror_remotes(tmp_path / "mirror"))
    split = load_dataset({"name": "mnist"})
    np.testing.assert_array_equal(split.y_train, arrays["train-labels-idx1-ubyte"])
    assert sorted(p.name for p in (cache / "raw" / "mnist").iterdir()) == sorted(
        f"{s}.gz" for s in IDX_FILES
    )
    assert DATASETS["mnist"].available()


def test_download_checksum_mismatch_keeps_nothing(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("NORMBENCH_OFFLINE")
    write_idx_dir(tmp_path / "mirror", gz=True)
    _serve(monkeypatch, "mnist", _mirror_remotes(tmp_path / "mirror", "0" * 32))
    with pytest.raises(InputError, match="checksum mismatch"):
        load_dataset({"name": "mnist"})
    assert list((cache / "raw" / "mnist").iterdir()) == []


def test_cifar_download_unpacks_only_the_batches(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("NORMBENCH_OFFLINE")
    written = write_cifar_dir(tmp_path / "src")
    archive = tmp_path / "mirror" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name in CIFAR_NAMES:
            tar.add(tmp_path / "src" / name, arcname=f"cifar-10-batches-bin/{name}")
        info = tarfile.TarInfo("../evil.txt")
        tar.addfile(info, io.BytesIO(b""))
    remote = Remote(
        archive.name, md5sum(archive), (archive.parent.as_uri() + "/",), extract=tuple(CIFAR_NAMES)
    )
    _serve(monkeypatch, "cifar10", (remote,))
    split = load_dataset({"name": "cifar10"})
    np.testing.assert_array_equal(split.y_test, written["test_batch.bin"][1])
    assert sorted(p.name for p in (cache / "raw" / "cifar10").iterdir()) == sorted(CIFAR_NAMES)
    assert not (cache / "raw" / "evil.txt").exists()


# --- CIFAR-10 -------------------------------------------------------------------------------------


def test_cifar_loader(tmp_path):
    written = write_cifar_dir(tmp_path / "c")
    split = load_dataset({"name": "cifar10", "path": str(tmp_path / "c")})
    assert split.x_train.shape == (10, 3, 32, 32) and split.x_test.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(split.x_train[:2], written["data_batch_1.bin"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(split.y_train[8:], written["data_batch_5.bin"][1])


def test_cifar_found_in_the_archive_subfolder(tmp_path):
    write_cifar_dir(tmp_path / "c" / "cifar-10-batches-bin")
    assert len(load_dataset({"name": "cifar10", "path": str(tmp_path / "c")}).x_test) == 2


def test_cifar_truncated_record(tmp_path):
    write_cifar_dir(tmp_path / "c")
    path = tmp_path / "c" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(InputError, match=r"data_batch_3\.bin is truncated or corrupt"):
        load_dataset({"name": "cifar10", "path": str(tmp_path / "c")})


def test_cifar_bad_label_byte(tmp_path):
    write_cifar_dir(tmp_path / "c")
    path = tmp_path / "c" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3073] = 200  # label of record 1
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="record 1 has label byte 200"):
        load_dataset({"name": "cifar10", "path": str(tmp_path / "c")})


def test_cifar_missing_file_is_named(tmp_path):
    write_cifar_dir(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4.bin").unlink()
    with pytest.raises(InputError, match=r"lacks data_batch_4\.bin;"):
        load_dataset({"name": "cifar10", "path": str(tmp_path / "c")})


# --- npz / .pt ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "layout"), [((3,), "vector"), ((2, 7), "sequence"), ((1, 4, 5), "image")]
)
def test_npz_layout_from_rank(tmp_path, shape, layout):
    path = write_npz(tmp_path / "d.npz", **simple_arrays(shape=shape))
    split = load_dataset({"name": "npz", "path": str(path)})
    assert (split.layout, split.task, split.num_outputs) == (layout, "classification", 3)
    assert split.x_train.shape[1:] == shape


def test_npz_float_labels_mean_regression(tmp_path):
    arrays = simple_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float64) + 0.5
    arrays["y_test"] = arrays["y_test"].astype(np.float64)
    split = load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "r.npz", **arrays))})
    assert split.task == "regression" and split.y_train.shape == (20, 1)
    assert split.y_train.dtype == np.float32 and split.num_outputs == 1


def test_npz_task_option_overrides(tmp_path):
    arrays = simple_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float32)  # integral floats
    arrays["y_test"] = arrays["y_test"].astype(np.float32)
    path = str(write_npz(tmp_path / "d.npz", **arrays))
    split = load_dataset({"name": "npz", "path": path, "task": "classification", "num_classes": 5})
    assert split.task == "classification" and split.y_train.dtype == np.int64
    assert split.num_outputs == 5
    assert load_dataset({"name": "npz", "path": path, "task": "regression"}).task == "regression"


def test_npz_missing_key(tmp_path):
    arrays = simple_arrays()
    del arrays["y_test"]
    with pytest.raises(InputError, match="lacks y_test"):
        load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "d.npz", **arrays))})


def test_npz_mismatched_lengths(tmp_path):
    arrays = simple_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    with pytest.raises(InputError, match="x_train has 20 samples but y_train has 19"):
        load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "d.npz", **arrays))})


def test_npz_nan_inputs_say_how_many_and_where(tmp_path):
    arrays = simple_arrays()
    arrays["x_test"][7, 1] = np.nan
    arrays["x_test"][8, 0] = np.inf
    with pytest.raises(InputError, match=r"x_test contains 2 non-finite .* first in sample 7"):
        load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "d.npz", **arrays))})


def test_npz_non_integer_labels_for_classification(tmp_path):
    arrays = simple_arrays()
    arrays["y_train"] = arrays["y_train"] + 0.25
    path = str(write_npz(tmp_path / "d.npz", **arrays))
    with pytest.raises(InputError, match=r"non-integer label .* at index 0"):
        load_dataset({"name": "npz", "path": path, "task": "classification"})


def test_npz_negative_label(tmp_path):
    arrays = simple_arrays()
    arrays["y_test"][4] = -1
    with pytest.raises(InputError, match="y_test has label -1 at index 4"):
        load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "d.npz", **arrays))})


def test_npz_label_beyond_num_classes(tmp_path):
    path = str(write_npz(tmp_path / "d.npz", **simple_arrays()))
    with pytest.raises(InputError, match="outside the 2 classes"):
        load_dataset({"name": "npz", "path": path, "num_classes": 2})


def test_npz_bad_rank(tmp_path):
    arrays = simple_arrays()
    arrays["x_train"] = arrays["x_train"][:, 0]
    arrays["x_test"] = arrays["x_test"][:, 0]
    with pytest.raises(InputError, match="expected rank 2"):
        load_dataset({"name": "npz", "path": str(write_npz(tmp_path / "d.npz", **arrays))})


def test_npz_file_missing_or_garbage(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset({"name": "npz", "path": str(tmp_path / "missing.npz")})
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="could not be read"):
        load_dataset({"name": "npz", "path": str(tmp_path / "junk.npz")})


def test_npz_path_is_required():
    with pytest.raises(OptionError) as err:
        resolve_dataset({"name": "npz"})
    assert err.value.path == ("path",)


def test_pt_tensors_load_and_unsafe_content_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    arrays = {k: torch.from_numpy(np.asarray(v)) for k, v in simple_arrays(shape=(2, 5)).items()}
    torch.save(arrays, tmp_path / "d.pt")
    split = load_dataset({"name": "npz", "path": str(tmp_path / "d.pt")})
    assert split.layout == "sequence" and split.x_train.shape == (20, 2, 5)
    np.testing.assert_array_equal(split.y_test, arrays["y_test"].numpy())
    torch.save({**arrays, "x_train": io.StringIO("an arbitrary object")}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=r"weights_only=True"):
        load_dataset({"name": "npz", "path": str(tmp_path / "bad.pt")})


# --- digits ---------------------------------------------------------------------------------------


def test_digits_split_is_deterministic_by_seed():
    pytest.importorskip("sklearn")
    a = load_dataset({"name": "digits"})
    b = load_dataset({"name": "digits", "seed": 1})
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    assert not np.array_equal(a.y_test, b.y_test)
    clear_memo()
    np.testing.assert_array_equal(load_dataset({"name": "digits"}).x_test, a.x_test)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(InputError, match=r"normbench\[sklearn\]"):
        load_dataset({"name": "digits"})


# --- synthetic ------------------------------------------------------------------------------------


def test_blobs_overlap_grows_with_dispersion_around_fixed_centres():
    base = {"name": "synthetic-blobs", "classes": 3, "features": 5, "num_samples": 300}
    tight = load_dataset({**base, "dispersion": 0.0})
    loose = load_dataset({**base, "dispersion": 2.0})
    half = load_dataset({**base, "dispersion": 1.0})
    centres = generators.blob_centres(0, 3, 5)
    np.testing.assert_allclose(tight.x_train, centres[tight.y_train], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0)
    np.testing.assert_allclose(
        loose.x_train - tight.x_train, 2 * (half.x_train - tight.x_train), atol=1e-5
    )
    assert (tight.x_train.shape, tight.x_test.shape) == ((240, 5), (60, 5))


def test_synthetic_train_split_does_not_depend_on_test_size():
    a = load_dataset({"name": "synthetic-spirals", "num_train": 50, "num_test": 10})
    b = load_dataset({"name": "synthetic-spirals", "num_train": 50, "num_test": 30})
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (50, 2) and a.num_outputs == 3
    c = load_dataset({"name": "synthetic-spirals", "num_train": 50, "num_test": 10, "seed": 1})
    assert not np.array_equal(a.x_train, c.x_train)


def test_regression_linear_and_nonlinear_targets():
    cfg = {"name": "synthetic-regression", "noise": 0.0, "num_samples": 500, "targets": 2}
    linear = load_dataset({**cfg, "target": "linear"})
    nonlinear = load_dataset(cfg)
    assert linear.y_train.shape == (400, 2) and linear.task == "regression"

    def residual(split):
        coef = np.linalg.lstsq(split.x_train, split.y_train, rcond=None)[0]
        return float(np.mean((split.x_train @ coef - split.y_train) ** 2))

    assert residual(linear) < 1e-8
    assert residual(nonlinear) > 0.3 * float(nonlinear.y_train.var())
    assert 0.3 < float(nonlinear.y_train.var()) < 3.0


def test_adding_problem_targets_are_the_marked_sums():
    split = load_dataset({"name": "adding-problem", "length": 10, "num_samples": 50})
    x, y = split.x_train, split.y_train
    assert x.shape == (40, 2, 10) and y.shape == (40, 1) and split.layout == "sequence"
    markers = x[:, 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :5].sum(1) == 1).all() and (markers[:, 5:].sum(1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[:, 0] * markers).sum(1), rtol=1e-6)


# --- option resolution ---------------------------------------------------------------------------


def test_resolve_fills_defaults_and_is_idempotent(tmp_path):
    for name in DATASETS:
        cfg = {"name": name, "path": str(tmp_path)} if name == "npz" else {"name": name}
        if name == "custom":
            cfg["target"] = "custom_models:images"
        resolved = resolve_dataset(cfg)
        assert resolve_dataset(resolved) == resolved
    assert resolve_dataset("mnist1d")["seed"] == 42
    sizes = resolve_dataset({"name": "synthetic-blobs", "num_samples": 100})
    assert (sizes["num_train"], sizes["num_test"]) == (80, 20)


def test_unknown_dataset_suggests_the_closest():
    with pytest.raises(OptionError, match="did you mean 'mnist1d'") as err:
        resolve_dataset({"name": "mnsit1d"})
    assert err.value.path == ("name",)


def test_unknown_option_suggests_the_closest():
    with pytest.raises(OptionError, match="did you mean 'num_samples'") as err:
        resolve_dataset({"name": "mnist1d", "num_sample": 100})
    assert err.value.path == ("num_sample",)


def test_wrong_types():
    with pytest.raises(OptionError, match="must be an integer") as err:
        resolve_dataset({"name": "mnist1d", "num_samples": "many"})
    assert err.value.path == ("num_samples",)
    with pytest.raises(OptionError, match="true or false"):
        resolve_dataset({"name": "mnist", "binarize": "yes"})
    with pytest.raises(OptionError, match="must be a mapping"):
        resolve_dataset(["mnist"])  # type: ignore[arg-type]
    # PyYAML reads 1e-3 as a string; it still means the number.
    assert resolve_dataset({"name": "synthetic-blobs", "dispersion": "1e-3"})["dispersion"] == 1e-3


def test_bad_values():
    with pytest.raises(OptionError, match="did you mean 'zscore'"):
        resolve_dataset({"name": "mnist1d", "input_norm": "zsore"})
    with pytest.raises(OptionError, match="must be < 1") as err:
        resolve_dataset({"name": "mnist1d", "train_split": 1.0})
    assert err.value.path == ("train_split",)
    with pytest.raises(OptionError, match="low <= high"):
        resolve_dataset({"name": "mnist1d", "padding": [60, 36]})


def test_num_samples_too_small_for_the_split():
    with pytest.raises(OptionError, match="too small") as err:
        resolve_dataset({"name": "mnist1d", "num_samples": 12})
    assert err.value.path == ("num_samples",)
    with pytest.raises(OptionError, match="too small"):
        resolve_dataset({"name": "synthetic-blobs", "classes": 10, "num_samples": 10})


def test_inconsistent_sizes():
    with pytest.raises(OptionError, match=r"is not num_train 80 \+ num_test 30"):
        resolve_dataset(
            {"name": "adding-problem", "num_samples": 100, "num_train": 80, "num_test": 30}
        )


# --- input normalisation --------------------------------------------------------------------------


def test_zscore_uses_training_statistics_only(tmp_path):
    arrays = simple_arrays(n_train=200, n_test=100)
    arrays["x_train"] *= np.array([1.0, 10.0, 100.0], np.float32)
    arrays["x_test"] = arrays["x_test"] * np.array([1.0, 10.0, 100.0], np.float32) + 50.0
    path = write_npz(tmp_path / "a.npz", **arrays)
    split = load_dataset({"name": "npz", "path": str(path), "input_norm": "zscore"})
    np.testing.assert_allclose(split.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(split.x_train.std(0), 1.0, atol=1e-4)
    # The test split keeps its shift: it was normalised with the training statistics.
    assert (split.x_test.mean(0) > 0.4).all()
    other = write_npz(tmp_path / "b.npz", **{**arrays, "x_test": arrays["x_test"] * 7 - 3})
    again = load_dataset({"name": "npz", "path": str(other), "input_norm": "zscore"})
    np.testing.assert_array_equal(split.x_train, again.x_train)


def test_image_statistics_are_per_channel(tmp_path):
    arrays = simple_arrays(shape=(2, 3, 3))
    arrays["x_train"][:, 1] = arrays["x_train"][:, 1] * 5 + 9
    path = write_npz(tmp_path / "i.npz", **arrays)
    z = load_dataset({"name": "npz", "path": str(path), "input_norm": "zscore"}).x_train
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert np.abs(z.mean(axis=0)).max() > 0.05  # per channel, not per pixel
    m = load_dataset({"name": "npz", "path": str(path), "input_norm": "minmax"}).x_train
    np.testing.assert_allclose(m.min(axis=(0, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(m.max(axis=(0, 2, 3)), 1.0, atol=1e-6)


def test_sequence_statistics_are_one_channel():
    split = load_dataset({"name": "mnist1d", "num_samples": 200, "input_norm": "zscore"})
    assert abs(float(split.x_train.mean())) < 1e-5
    assert abs(float(split.x_train.std()) - 1.0) < 1e-4
    assert np.abs(split.x_train.mean(0)).max() > 0.05


# --- views ----------------------------------------------------------------------------------------


def test_views_of_images(tmp_path):
    path = write_npz(tmp_path / "i.npz", **simple_arrays(shape=(2, 4, 5)))
    split = load_dataset({"name": "npz", "path": str(path)})
    assert view_for_model(split, "cnn").x_train.shape == (20, 2, 4, 5)
    assert view_for_model(split, "mlp").x_train.shape == (20, 40)
    rnn = view_for_model(split, "rnn")
    assert rnn.x_train.shape == (20, 4, 10) and rnn.view == "rnn"
    x = split.x_train
    assert rnn.x_train[3, 2, 1 * 5 + 4] == x[3, 1, 2, 4]  # row 2, channel 1, column 4
    assert view_for_model(rnn, "rnn") is rnn


def test_views_of_sequences(tmp_path):
    split = load_dataset({"name": "mnist1d", "num_samples": 100})
    assert view_for_model(split, "rnn").x_test.shape == (20, 40, 1)
    assert view_for_model(split, "cnn").x_test.shape == (20, 1, 40)
    assert view_for_model(split, "mlp").x_test.shape == (20, 40)
    multi = load_dataset({"name": "adding-problem", "length": 6, "num_samples": 10})
    rnn = view_for_model(multi, "rnn")
    assert rnn.x_train.shape == (8, 6, 2)
    np.testing.assert_array_equal(rnn.x_train[:, :, 1], multi.x_train[:, 1, :])
    assert view_for_model(multi, "cnn").x_train.shape == (8, 2, 6)


def test_vector_data_cannot_feed_cnn_or_rnn():
    split = load_dataset({"name": "synthetic-blobs", "num_samples": 20})
    for model in ("cnn", "rnn"):
        with pytest.raises(OptionError, match="use model kind mlp"):
            view_for_model(split, model)
    assert view_for_model(split, "mlp").x_train.shape == (16, 16)
    with pytest.raises(OptionError, match="unknown model kind"):
        view_for_model(split, "transfomer")


def test_check_pairing_uses_static_layouts():
    check_pairing("mnist1d", "rnn")
    check_pairing("mnist", "cnn")
    check_pairing("npz", "cnn")  # decided when the file is read
    with pytest.raises(OptionError, match="dataset 'synthetic-regression' has vector inputs"):
        check_pairing("synthetic-regression", "rnn")
    with pytest.raises(OptionError, match="unknown dataset"):
        check_pairing("minst", "mlp")


# --- cache ----------------------------------------------------------------------------------------


def test_second_load_reads_the_disk_cache_without_rebuilding(cache):
    cfg = {"name": "mnist1d", "num_samples": 200}
    first = load_dataset(cfg)
    files = list((cache / "datasets").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind
    stamp, builds = files[0].stat().st_mtime_ns, build_counts()["mnist1d"]
    clear_memo()
    second = load_dataset({**cfg, "input_norm": "minmax"})  # input_norm shares the build
    assert build_counts()["mnist1d"] == builds
    assert files[0].stat().st_mtime_ns == stamp and len(list((cache / "datasets").iterdir())) == 1
    assert second.x_train.min() == 0.0 and not np.array_equal(first.x_train, second.x_train)


def test_memo_makes_repeated_loads_free(monkeypatch):
    cfg = {"name": "mnist1d", "num_samples": 100}
    load_dataset(cfg)
    reads: list[Path] = []
    monkeypatch.setattr(registry, "read_npz", lambda p: reads.append(p))
    again = load_dataset(cfg)
    assert reads == [] and again.x_train.shape == (80, 40)


def test_corrupt_cache_file_is_rebuilt(cache):
    cfg = {"name": "mnist1d", "num_samples": 100}
    expected = load_dataset(cfg).x_train
    (path,) = (cache / "datasets").iterdir()
    path.write_bytes(b"garbage")
    clear_memo()
    builds = build_counts()["mnist1d"]
    np.testing.assert_array_equal(load_dataset(cfg).x_train, expected)
    assert build_counts()["mnist1d"] == builds + 1


def test_changed_source_file_invalidates_the_cache(tmp_path):
    write_idx_dir(tmp_path / "idx", seed=0)
    cfg = {"name": "mnist", "path": str(tmp_path / "idx")}
    before = load_dataset(cfg)
    builds = build_counts()["mnist"]
    new = write_idx_dir(tmp_path / "idx", seed=5)  # same sizes, new content
    for path in (tmp_path / "idx").iterdir():  # a distinct mtime even on coarse clocks
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = load_dataset(cfg)
    assert build_counts()["mnist"] == builds + 1
    np.testing.assert_array_equal(after.y_train, new["train-labels-idx1-ubyte"])
    assert not np.array_equal(before.x_train, after.x_train)


def test_cache_root_default_and_override(monkeypatch, tmp_path):
    assert cache_root() == tmp_path / "cache"
    monkeypatch.delenv("NORMBENCH_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "normbench"


# --- listing --------------------------------------------------------------------------------------


def test_dataset_rows_cover_the_registry(cache):
    rows = {r["name"]: r for r in dataset_rows()}
    assert list(rows) == list(DATASETS)
    for row in rows.values():
        assert {
            "summary",
            "task",
            "layout",
            "shapes",
            "size",
            "options",
            "extra",
            "available",
            "note",
        } <= set(row)
    assert (
        rows["mnist"]["available"] is False
        and str(cache / "raw" / "mnist") in rows["mnist"]["note"]
    )
    assert "num_samples=5000" in rows["mnist1d"]["options"]
    assert rows["digits"]["extra"] == "sklearn"
    write_idx_dir(cache / "raw" / "mnist", gz=True)
    assert {r["name"]: r for r in dataset_rows()}["mnist"]["available"] is True
