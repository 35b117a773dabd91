"""Token datasets (text, assoc-recall, modular-add) and accuracy over scored token labels."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from torch import nn

from normbench.data import check_pairing, load_dataset
from normbench.data.tokens import python_manual
from normbench.errors import InputError, OptionError
from normbench.train.context import evaluate
from normbench.train.loop import token_cross_entropy

TOKEN_SUITE = """\
name: tokens
dataset:
  name: {dataset}
model:
  kind: custom
  target: "custom_models:TokenNet"
  norm: keep
training:
  optimizer: adam
  lr: 0.01
  batch_size: 16
  steps: 4
  eval_every: 2
  seeds: 1
  device: cpu
"""


# --- text ----------------------------------------------------------------------------------------


def test_the_default_text_is_the_python_manual_with_its_fingerprint() -> None:
    from pydoc_data.topics import topics

    split = load_dataset("text")
    text = "".join(topics[k] for k in sorted(topics))
    info = split.info
    assert info["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert info["python"] == platform.python_version()
    assert info["chars"] == len(text) > 100_000
    assert info["vocab"] == "".join(sorted(set(text))) and split.num_outputs == len(set(text))
    assert split.layout == "tokens" and split.task == "classification"
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert split.x_train.shape[1] == split.y_train.shape[1] == 64


def test_windows_predict_the_next_character_and_the_validation_block_is_contiguous() -> None:
    split = load_dataset({"name": "text", "context": 16, "seed": 3})
    info, vocab = split.info, split.info["vocab"]
    text = python_manual()

    def decode(row: np.ndarray) -> str:
        return "".join(vocab[int(i)] for i in row)

    # Writable copies, not views of the encoded text (torch warns about read-only arrays).
    assert split.y_test.flags.writeable and split.y_train.flags.writeable
    # y is x shifted by one: the window's next character at every position.
    assert np.array_equal(split.x_train[:, 1:], split.y_train[:, :-1].astype(np.float32))
    start, size = info["val_start"], info["val_tokens"]
    block = text[start : start + size]
    assert size == round(0.1 * len(text))
    assert decode(split.x_test[0]) == block[:16]
    assert decode(split.y_test[1]) == block[17:33]  # stride = context by default
    # No training window overlaps the validation block: the first one after it starts there.
    after = text[start + size : start + size + 16]
    assert any(decode(row) == after for row in split.x_train)
    other = load_dataset({"name": "text", "context": 16, "seed": 4}).info["val_start"]
    assert other != start  # the seed moves the block


def test_byte_level_stride_and_limit_chars(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("héllo wörld, " * 40, encoding="utf-8")
    split = load_dataset(
        {"name": "text", "path": str(path), "level": "byte", "context": 8, "stride": 4}
    )
    data = path.read_bytes()
    assert split.num_outputs == 256 and split.info["tokens"] == len(data)
    start = split.info["val_start"]
    assert bytes(split.x_test[1].astype(np.uint8)) == data[start + 4 : start + 12]
    small = load_dataset({"name": "text", "path": str(path), "limit_chars": 100, "context": 8})
    assert small.info["chars_used"] == 100 and small.info["sha256"] == split.info["sha256"]


def test_a_folder_is_read_in_sorted_order_by_pattern(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second " * 30, encoding="utf-8")
    (tmp_path / "1.txt").write_text("first " * 30, encoding="utf-8")
    (tmp_path / "skip.md").write_bytes(b"\xff\xfe not text")
    split = load_dataset({"name": "text", "path": str(tmp_path), "context": 4})
    # 1.txt, then b/2.txt, joined by a newline; skip.md does not match *.txt.
    assert split.info["files"] == 2 and split.info["vocab"] == "\n cdefinorst"
    assert split.info["tokens"] == len("first " * 30 + "\n" + "second " * 30)
    first = "".join(split.info["vocab"][int(i)] for i in split.x_train[0])
    if split.info["val_start"] >= 5:  # else the validation block took the first window
        assert first == "firs"


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (b"\xff\xfe\x00abc", {}, r"is not UTF-8 text \(byte 0 "),
        (b"", {}, "is empty"),
        (b"short text here", {"context": 64}, "too few for one window of context 64"),
    ],
)
def test_bad_text_files_are_one_sentence(
    tmp_path: Path, content: bytes, options: dict, message: str
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_dataset({"name": "text", "path": str(path), **options})


def test_a_folder_without_text_files_and_token_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no files matching"):
        load_dataset({"name": "text", "path": str(tmp_path)})
    with pytest.raises(OptionError, match="must be none for token data"):
        load_dataset({"name": "text", "input_norm": "zscore"})
    with pytest.raises(OptionError, match="need at least as many keys"):
        load_dataset({"name": "assoc-recall", "pairs": 9, "keys": 8})
    with pytest.raises(OptionError, match="has tokens inputs, which a mlp model cannot take"):
        check_pairing("modular-add", "mlp")


def test_a_bad_text_file_in_a_suite_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\x80 not utf-8")
    suite = tmp_path / "s.yaml"
    text = TOKEN_SUITE.format(dataset="text").replace(
        "  name: text\n", f"  name: text\n  path: {tmp_path / 'bad.txt'}\n"
    )
    suite.write_text(text, encoding="utf-8")
    proc = run_cli("run", suite, "--out", tmp_path / "runs")
    assert proc.returncode == 2, proc.stderr
    assert "is not UTF-8 text" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- synthetic tasks ----------------------------------------------------------------------------


def test_assoc_recall_answers_are_determined_by_the_sequence() -> None:
    split = load_dataset({"name": "assoc-recall", "pairs": 4, "keys": 6, "values": 5})
    x, y = split.x_train.astype(np.int64), split.y_train
    assert x.shape == (4000, 9) and split.num_outputs == 11 and split.info["loss_floor"] == 0.0
    assert (y[:, :-1] == -100).all()
    for row, label in zip(x[:200], y[:200, -1], strict=True):
        keys, values, query = row[0:-1:2], row[1:-1:2], row[-1]
        assert len(set(keys)) == 4 and keys.max() < 6 and values.min() >= 6
        assert label == values[list(keys).index(query)]


def test_modular_add_covers_every_pair_once() -> None:
    split = load_dataset({"name": "modular-add", "modulus": 7, "train_fraction": 0.3})
    x = np.concatenate([split.x_train, split.x_test]).astype(np.int64)
    y = np.concatenate([split.y_train, split.y_test])
    assert len(split.x_train) == round(49 * 0.3) and split.num_outputs == 8
    assert sorted(map(tuple, x[:, :2].tolist())) == [(a, b) for a in range(7) for b in range(7)]
    assert (x[:, 2] == 7).all() and (y[:, :2] == -100).all()
    assert (y[:, 2] == (x[:, 0] + x[:, 1]) % 7).all()
    assert split.info["loss_floor"] == 0.0


# --- accuracy over scored labels ----------------------------------------------------------------


class _Oracle(nn.Module):
    """Logits (N, T, K) that put the answer of modular addition at the last position only."""

    def __init__(self, p: int) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape
        out = torch.zeros(n, t, self.p + 1)
        answer = (x[:, 0].long() + x[:, 1].long()) % self.p
        out[torch.arange(n), t - 1, answer] = 20.0
        out[:, : t - 1, self.p] = 20.0  # confidently wrong where nothing is scored
        return out


def test_evaluate_counts_only_the_scored_token_labels() -> None:
    split = load_dataset({"name": "modular-add", "modulus": 5})
    x, y = torch.as_tensor(split.x_test), torch.as_tensor(split.y_test)
    loss, acc = evaluate(_Oracle(5), x, y, token_cross_entropy, True, chunk=4)
    assert acc == 1.0 and loss < 1e-6
    flipped = y.clone()
    flipped[::2, -1] = (flipped[::2, -1] + 1) % 5  # half the answers now wrong
    _, acc = evaluate(_Oracle(5), x, flipped, token_cross_entropy, True, chunk=4)
    assert acc == pytest.approx(len(y[1::2]) / len(y))


def test_evaluate_of_one_label_per_sample_is_unchanged() -> None:
    torch.manual_seed(0)
    model, x = nn.Linear(3, 4), torch.randn(10, 3)
    y = torch.randint(0, 4, (10,))
    loss, acc = evaluate(model, x, y, F.cross_entropy, True, chunk=3)
    with torch.no_grad():
        out = model(x)
    parts = [
        F.cross_entropy(out[i : i + 3], y[i : i + 3]) * len(y[i : i + 3]) for i in (0, 3, 6, 9)
    ]
    assert loss == float(sum(parts, torch.zeros(()))) / 10
    assert acc == float((out.argmax(1) == y).sum()) / 10


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["text", "modular-add"])
def test_a_token_suite_trains_and_records_the_dataset_info(tmp_path: Path, dataset: str) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(TOKEN_SUITE.format(dataset=dataset), encoding="utf-8")
    proc = run_cli("run", suite, "--out", tmp_path / "runs", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    (record_path,) = (tmp_path / "runs").glob("*/*/results/*.json")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["status"] == "ok"
    assert 0.0 <= record["metrics"]["final_test_acc"] <= 1.0
    info = record["dataset_info"]
    assert ("sha256" in info) == (dataset == "text") and ("loss_floor" in info) == (
        dataset != "text"
    )
    (manifest,) = (tmp_path / "runs").glob("*/*/manifest.json")
    assert list(json.loads(manifest.read_text())["data"]["info"].values()) == [info]
