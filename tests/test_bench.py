"""Tests for `normbench bench`: parsing, byte model, timing loop, records, rendering and the CLI."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from normbench.bench import parse, render_bench, run_bench
from normbench.bench.runner import resolve_device, synchronizer
from normbench.bench.timing import Timing, block_size, measure
from normbench.bench.traffic import copy_bytes, forward_backward_bytes, forward_bytes, gbps
from normbench.cli import app
from normbench.errors import InputError, OptionError
from normbench.spread import quartiles

TINY = {"min_time": 0.002, "repeats": 3}
TINY_CLI = ["--min-time", "0.002", "--repeats", "3", "--device", "cpu"]


def invoke(*args: str):  # type: ignore[no-untyped-def]
    """Run `normbench bench ARGS`; with one registered command Typer has no subcommand name."""
    group = hasattr(typer.main.get_command(app), "list_commands")
    return CliRunner().invoke(app, ["bench", *args] if group else list(args))


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("256x1024", (256, 1024)),
        ("8x4x10", (8, 4, 10)),
        ("32x64x56x56", (32, 64, 56, 56)),
        ("2×3", (2, 3)),
    ],
)
def test_parse_shape(text: str, shape: tuple[int, ...]) -> None:
    assert parse.parse_shape(text) == shape
    assert parse.format_shape(shape) == text.replace("×", "x")


@pytest.mark.parametrize("text", ["12xx3", "5", "1x2x3x4x5", "0x3", "ax3", "3x", ""])
def test_parse_shape_malformed(text: str) -> None:
    with pytest.raises(InputError, match="malformed shape"):
        parse.parse_shape(text)


def test_parse_norm_arg() -> None:
    assert parse.parse_norm_arg("layer") == "layer"
    assert parse.parse_norm_arg("group[groups=8,eps=1e-6,affine=false]") == {
        "kind": "group",
        "groups": 8,
        "eps": 1e-6,
        "affine": False,
    }
    assert parse.norm_label({"kind": "group", "groups": 8}) == "group[groups=8]"
    with pytest.raises(InputError, match="malformed norm"):
        parse.parse_norm_arg("group[groups=8")
    with pytest.raises(InputError, match="malformed option"):
        parse.parse_norm_arg("group[8]")


def test_parse_dtype_and_choices() -> None:
    assert parse.parse_dtype("bf16") == "bfloat16"
    with pytest.raises(InputError, match="unknown dtype 'float8'"):
        parse.parse_dtype("float8")
    assert parse.parse_choice("both", parse.PASS_CHOICES, "pass") == parse.PASSES
    with pytest.raises(InputError, match="unknown mode"):
        parse.parse_choice("test", parse.MODE_CHOICES, "mode")


# --- byte model and statistics ---------------------------------------------------------------


def test_byte_model() -> None:
    x, p, b = 1000, 10, 4
    assert forward_bytes(x, p, b, train=False) == 2 * x + p + b
    assert forward_bytes(x, p, b, train=True) == 2 * x + p + 2 * b  # running stats written
    assert forward_backward_bytes(x, p, b, train=False) == 5 * x + 3 * p + b
    assert copy_bytes(x) == 2 * x
    assert gbps(2_000_000_000, 2.0) == 1.0


def test_quartiles_match_numpy() -> None:
    import numpy as np

    data = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    assert quartiles(data) == pytest.approx(tuple(np.percentile(data, [25, 50, 75])))
    assert quartiles([7.0]) == (7.0, 7.0, 7.0)


def test_timing_noisy_flag() -> None:
    steady = Timing(1.0, 0.96, 1.05, 10, 1, 10.0, 3)
    noisy = Timing(1.0, 0.9, 1.11, 10, 1, 10.0, 3)
    assert not steady.noisy and noisy.noisy
    assert noisy.as_record()["iqr_fraction"] == pytest.approx(0.21)


class FakeClock:
    """A clock that advances only when the timed function runs; logs clock reads and syncs."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call, self.log = 0.0, per_call, []

    def __call__(self) -> float:
        self.log.append("clock")
        return self.now

    def fn(self) -> None:
        self.log.append("fn")
        self.now += self.per_call

    def sync(self) -> None:
        self.log.append("sync")


def test_measure_repeats_until_min_time() -> None:
    per_call = 2.0**-13  # binary fractions keep the fake clock exact
    clock = FakeClock(per_call)
    t = measure(
        clock.fn,
        sync=clock.sync,
        clock=clock,
        min_time=0.05,
        repeats=3,
        warmup_time=2.0**-10,
        block_s=2.0**-10,
    )
    assert t.median_s == per_call and t.iqr_s == 0
    assert t.number == block_size(per_call, 2.0**-10) == 8
    assert t.total_s >= 0.05 and t.repeats == 52  # ceil(0.05 / (8 · 2⁻¹³)) samples
    assert t.warmup_calls == 8  # warm-up ran for warmup_time before any sample


def test_measure_honours_repeats_and_syncs_before_clock() -> None:
    clock = FakeClock(per_call=0.01)
    t = measure(clock.fn, sync=clock.sync, clock=clock, min_time=0.0, repeats=7, block_s=1e-3)
    assert t.repeats == 7 and t.number == 1
    # Every clock read that closes a timed region comes right after a sync (CUDA correctness).
    reads = [i for i, e in enumerate(clock.log) if e == "clock" and clock.log[i - 1] == "fn"]
    assert not reads


def test_measure_resizes_blocks_when_sync_is_slow() -> None:
    # A GPU-like device: each sync costs 50 µs, so per-call warm-up times overestimate a 5 µs
    # kernel 11-fold; calibration must grow the block until sync overhead is amortised.
    clock = FakeClock(per_call=5e-6)

    def slow_sync() -> None:
        clock.now += 5e-5

    t = measure(clock.fn, sync=slow_sync, clock=clock, min_time=0.0, repeats=5, block_s=1e-3)
    assert t.number > 100 and t.median_s == pytest.approx(5e-6, rel=0.1)


def test_measure_real_function() -> None:
    t = measure(lambda: sum(range(200)), min_time=0.005, repeats=5)
    assert t.repeats >= 5 and 0 < t.q1_s <= t.median_s <= t.q3_s


# --- devices ---------------------------------------------------------------------------------


def test_cpu_sync_is_noop_and_cuda_sync_targets_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert synchronizer(torch.device("cpu"))() is None
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    synchronizer(torch.device("cuda", 1))()
    assert calls == [torch.device("cuda", 1)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_unavailable() -> None:
    with pytest.raises(InputError, match="device 'cuda'"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")


# --- run_bench -------------------------------------------------------------------------------


def test_run_bench_records() -> None:
    recs = run_bench(["layer", "batch"], ["8x16"], device="cpu", modes=("train", "eval"), **TINY)
    assert [r["norm"] for r in recs] == ["copy"] + ["layer"] * 4 + ["batch"] * 4
    copy = recs[0]
    assert copy["pass"] == "copy" and copy["bytes"] == 2 * 8 * 16 * 4
    for r in recs:
        assert r["status"] == "ok" and r["threads"] == torch.get_num_threads()
        assert r["gbps"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        assert r["copy_fraction"] == pytest.approx(r["gbps"] / copy["gbps"])
        assert r["q1_s"] <= r["median_s"] <= r["q3_s"] and r["repeats"] >= 3
    x = 8 * 16 * 4
    by_key = {(r["norm"], r["mode"], r["pass"]): r["bytes"] for r in recs}
    # layer: γ, β = 2·16 floats; batch adds running mean and var (2·16), written in train.
    assert by_key["layer", "eval", "forward"] == 2 * x + 128
    assert by_key["layer", "train", "forward+backward"] == 5 * x + 3 * 128
    assert by_key["batch", "train", "forward"] == 2 * x + 128 + 2 * 128
    assert by_key["batch", "eval", "forward"] == 2 * x + 128 + 128


def test_run_bench_bfloat16_and_4d() -> None:
    recs = run_bench(
        ["group[groups=4]", "instance"],
        ["2x8x4x4"],
        ["bfloat16"],
        "cpu",
        passes=("forward",),
        **TINY,
    )
    assert [(r["norm"], r["dtype"]) for r in recs[1:]] == [
        ("group[groups=4]", "bfloat16"),
        ("instance", "bfloat16"),
    ]
    assert recs[1]["spec"]["groups"] == 4 and recs[0]["bytes"] == 2 * 2 * 8 * 16 * 2


def test_default_norms_skip_shapes_they_cannot_take() -> None:
    msgs: list[str] = []
    recs = run_bench(
        None, ["1x16"], device="cpu", passes=("forward",), progress=msgs.append, **TINY
    )
    assert [r["norm"] for r in recs] == ["copy", "layer", "rms"]
    assert any(m.startswith("skip: norm 'batch' cannot take shape 1x16") for m in msgs)


def test_explicit_norm_incompatible_raises() -> None:
    with pytest.raises(OptionError, match="norm 'instance' cannot take shape 8x16"):
        run_bench(["instance"], ["8x16"], device="cpu", **TINY)
    with pytest.raises(InputError, match="nothing to benchmark"):
        run_bench(["weight"], ["8x16"], device="cpu", **TINY)


def test_all_selects_every_benchmarkable_norm() -> None:
    from normbench.bench.runner import resolve_norm_cases
    from normbench.norms import NORMS

    cases = resolve_norm_cases(["all"])
    kinds = {c.spec["kind"] for c in cases}
    assert {"batch", "layer", "rms", "group", "instance"} <= kinds
    assert not kinds & {"none", "weight", "custom"} and len(kinds) == len(NORMS) - 3
    assert not any(c.explicit for c in cases)  # each is skipped where it cannot take a shape


def test_failed_layer_becomes_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import normbench.norms

    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("kernel not implemented\nsecond line")

    monkeypatch.setattr(normbench.norms, "make", lambda n, spec: Broken())
    recs = run_bench(["layer"], ["4x8"], device="cpu", passes=("forward",), **TINY)
    assert recs[1]["status"] == "error" and recs[1]["median_s"] is None
    assert recs[1]["error"] == "RuntimeError: kernel not implemented"
    assert "error: RuntimeError" in render_bench(recs, "table")


# --- rendering -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return run_bench(["rms"], ["4x8"], device="cpu", passes=("forward",), **TINY)


def test_render_formats(records: list[dict]) -> None:
    assert json.loads(render_bench(records, "json")) == json.loads(json.dumps(records))
    rows = list(csv.DictReader(io.StringIO(render_bench(records, "csv"))))
    assert [r["norm"] for r in rows] == ["copy", "rms"] and json.loads(rows[1]["spec"])["kind"]
    md = render_bench(records, "markdown").splitlines()
    assert md[0].startswith("| norm") and "of copy" in md[0] and len(md) == 4
    assert "\\begin{tabular}" in render_bench(records, "latex")
    noisy = [{**records[1], "noisy": True}]
    assert "noisy" in render_bench(noisy, "table").splitlines()[-1]
    with pytest.raises(InputError, match="unknown format"):
        render_bench(records, "html")


def test_median_is_statistics_median_of_samples() -> None:
    samples = [3.0, 1.0, 2.0, 8.0]
    assert quartiles(samples)[1] == statistics.median(samples)


# --- CLI -------------------------------------------------------------------------------------


def test_cli_bench_json() -> None:
    result = invoke("layer", "--shape", "4x8", "--pass", "forward", "--format", "json", *TINY_CLI)
    assert result.exit_code == 0, result.output
    recs = json.loads(result.stdout)
    assert [(r["norm"], r["pass"]) for r in recs] == [("copy", "copy"), ("layer", "forward")]
    assert [r["compiled"] for r in recs] == [None, False]  # eager unless --compile
    assert "[2/2] layer 4x8 float32 train forward" in result.stderr


@pytest.mark.slow
def test_cli_bench_compiled_rows_beside_eager() -> None:
    result = invoke("dyt", "--shape", "4x8", "--compile", "both", "--format", "json", *TINY_CLI)
    assert result.exit_code == 0, result.output
    recs = json.loads(result.stdout)
    rows = [(r["norm"], r["pass"], r["compiled"], r["status"]) for r in recs]
    assert rows == [("copy", "copy", None, "ok")] + [
        ("dyt", p, c, "ok") for c in (False, True) for p in ("forward", "forward+backward")
    ]
    table = render_bench(recs, "markdown")
    assert "dyt (compiled)" in table and "| dyt " in table


def test_cli_help_has_example() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "Example: normbench bench" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shape", "12xx3"], "malformed shape '12xx3'"),
        (["instance", "--shape", "8x16"], "norm 'instance' cannot take shape 8x16"),
        (["group[groups=3]", "--shape", "8x16"], "groups 3 must divide"),
        (["lyer", "--shape", "8x16"], "unknown norm 'lyer' — did you mean 'layer'?"),
        (["layer", "--shape", "8x16", "--dtype", "float16"], "float16 is benchmarked on GPU only"),
        (["layer", "--shape", "8x16", "--dtype", "float8"], "unknown dtype 'float8'"),
        (["layer", "--shape", "8x16", "--pass", "sideways"], "unknown pass 'sideways'"),
        (["layer", "--shape", "8x16", "--compile", "maybe"], "unknown compile 'maybe'"),
    ],
)
def test_cli_bad_input(args: list[str], message: str) -> None:
    result = invoke(*args, *TINY_CLI)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cli_cuda_unavailable() -> None:
    result = invoke("layer", "--shape", "8x16", "--min-time", "0.002", "--device", "cuda")
    assert result.exit_code == 2
    assert "device 'cuda'" in result.stderr and len(result.stderr.splitlines()) == 1


def test_cli_failed_layer_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    import normbench.norms

    monkeypatch.setattr(normbench.norms, "make", lambda n, spec: torch.nn.Linear(1, 1))
    result = invoke("layer", "--shape", "4x8", "--pass", "forward", *TINY_CLI)
    assert result.exit_code == 3 and "error: RuntimeError" in result.stdout


def test_cli_import_is_torch_free() -> None:
    code = "import sys, normbench.cli, normbench.bench; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_copy_roof_gets_enough_samples_and_records_say_how_outputs_were_served() -> None:
    from normbench.bench.runner import COPY_MIN_REPEATS

    recs = run_bench(["layer"], ["64x256"], device="cpu", passes=("forward",), **TINY)
    assert recs[0]["norm"] == "copy" and recs[0]["repeats"] >= COPY_MIN_REPEATS
    assert {r["outputs"] for r in recs} == {"warm"}  # glibc here: freed memory is kept
    assert recs[1]["copy_iqr_fraction"] == recs[0]["iqr_fraction"]


def test_fresh_outputs_in_a_fresh_process() -> None:
    # The allocator setting is per process and sticks, so "fresh" is checked in a child.
    code = (
        "from normbench.bench import run_bench; "
        "r = run_bench(['layer'], ['8x16'], device='cpu', passes=('forward',), repeats=2, "
        "min_time=0.0, warm_outputs=False); print({x['outputs'] for x in r})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'fresh'}"


def test_above_the_copy_roof_is_explained() -> None:
    from normbench.bench.runner import roof_note

    rec = {"status": "ok", "copy_fraction": 2.5, "bytes": 4 << 20, "copy_iqr_fraction": 0.02}
    assert "fits in the 32 MiB cache" in roof_note(rec, "cpu", 32 << 20)
    big = {**rec, "bytes": 200 << 20}
    assert "fewer bytes than the byte model" in roof_note(big, "cpu", 32 << 20)
    noisy_roof = {**rec, "copy_iqr_fraction": 0.5}  # a noisy roof explains it first
    assert "copy row itself is noisy" in roof_note(noisy_roof, "cpu", 32 << 20)
    assert roof_note({**rec, "copy_fraction": 0.9}, "cpu", 32 << 20) is None
    assert roof_note({**rec, "status": "error", "copy_fraction": None}, "cpu", None) is None


def test_threads_option() -> None:
    before = torch.get_num_threads()
    try:
        recs = run_bench(["layer"], ["8x16"], device="cpu", passes=("forward",), threads=1, **TINY)
        assert {r["threads"] for r in recs} == {1}
        with pytest.raises(InputError, match="threads must be at least 1"):
            run_bench(["layer"], ["8x16"], device="cpu", threads=0, **TINY)
    finally:
        torch.set_num_threads(before)
