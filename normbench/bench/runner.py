"""`run_bench`: validate the request, time every norm × shape × dtype × mode × pass and a copy."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from normbench.bench.parse import (
    MODES,
    PASSES,
    Shape,
    format_shape,
    norm_label,
    parse_dtype,
    parse_norm_arg,
    parse_shape,
)
from normbench.bench.render import format_seconds
from normbench.bench.timing import Timing, measure
from normbench.bench.traffic import copy_bytes, gbps, pass_bytes
from normbench.errors import InputError, OptionError, unknown
from normbench.limits import check_fits, physical_memory
from normbench.spread import finite_number

if TYPE_CHECKING:  # torch is imported lazily so `normbench --help` stays torch-free
    import torch

DEFAULT_NORMS: tuple[str, ...] = ("batch", "layer", "rms")
DEFAULT_SHAPES: tuple[str, ...] = ("256x1024", "32x64x56x56")
# Names that select every benchmarkable norm (each only where it accepts the shape).
ALL = "all"
# No layer of their own to time: identity, or a re-parametrisation of the preceding Linear/Conv.
_NOT_BENCHMARKABLE = {
    "none": "is the identity",
    "weight": "re-parametrises the preceding Linear/Conv and has no layer of its own",
}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
Progress = Callable[[str], None]
# The copy roof gets at least this many samples: it is the denominator of every "of copy".
COPY_MIN_REPEATS = 30
MAX_REPEATS = 100_000  # timed samples per measurement: beyond this a measurement never ends
MAX_MIN_TIME = 3600.0  # seconds per measurement
# Tensors of the input's size alive at once while a layer is timed (float32 source, input,
# output, the gradients of both, one spare for the copy): what a shape must fit.
LIVE_COPIES = 6
# glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


def warm_allocator() -> bool:
    """Serve large CPU tensors from the heap and keep freed memory: outputs come back warm.

    glibc hands allocations above its mmap threshold (at most 32 MiB by default) fresh
    ``mmap`` pages, so a layer whose output is that large page-faults its whole output on
    every call, and whether a 25 MiB output is mmapped depends on what was freed before
    (glibc's threshold moves): the same work could time 2 ms or 8 ms. Raising the threshold
    and the trim threshold makes a freed output's pages the next call's output, as a
    preallocated buffer would be. Returns False where this is not glibc (nothing changed).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_KEEP_BYTES))
    ok = mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_KEEP_BYTES)) and ok
    return bool(ok)


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (Linux sysfs), for the "fits in cache" explanation."""
    from pathlib import Path

    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = f.read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return max(sizes) if sizes else None


def roof_note(rec: dict[str, Any], device_type: str, cache: int | None) -> str | None:
    """Why a layer beats the copy roof (> 100 % of copy): the figure needs a reason."""
    frac = rec.get("copy_fraction")
    if rec.get("status") != "ok" or frac is None or frac <= 1.0:
        return None
    working = rec.get("bytes") or 0
    # A noisy roof explains any excess first: the other reasons need a roof that holds.
    if rec.get("copy_iqr_fraction") and rec["copy_iqr_fraction"] > 0.10:
        return "above the copy roof: the copy row itself is noisy; re-run on a quiet machine"
    if device_type == "cpu" and cache and working <= cache:
        return (
            f"above the copy roof: its working set ({working / 2**20:.1f} MiB) fits in the "
            f"{cache / 2**20:.0f} MiB cache, so it is not held to DRAM bandwidth"
        )
    return (
        "above the copy roof: it moves fewer bytes than the byte model counts "
        "(e.g. an identity in eval, or statistics reused from cache)"
    )


@dataclass(frozen=True)
class NormCase:
    """A resolved norm to benchmark; ``explicit`` norms make an incompatible shape an error."""

    label: str
    spec: dict[str, Any]
    explicit: bool


# --- validation (fails before anything is timed) ---------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto|cpu|mps|cuda|cuda:N`` → a usable ``torch.device``; ``InputError`` if unavailable."""
    import torch

    from normbench.train.device import resolve_device as resolve_shared

    key = name.strip().lower()
    # torch.device() raises a bare RuntimeError on an unknown type: check the grammar first.
    if not _DEVICE_RE.match(key):
        raise InputError(f"unknown device '{name}' (choose from auto, cpu, cuda, cuda:N, mps)")
    device = resolve_shared(key)  # the one place that knows what is available
    if device.type == "cuda" and device.index is None:
        # Records name the GPU that ran: "cuda:0", not "cuda".
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def check_dtype(dtype: str, device: torch.device) -> None:
    """Refuse a dtype the device cannot benchmark meaningfully (see the README's bench section)."""
    import torch

    if dtype == "float16" and device.type == "cpu":
        # Half precision is a GPU format here: CPU half kernels vary by build and CPU and are
        # not what anyone deploys, so a CPU float16 figure would mislead. bfloat16 is the CPU
        # low-precision format.
        raise InputError("dtype float16 is benchmarked on GPU only; use bfloat16 or float32 on CPU")
    if dtype == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(
            f"dtype bfloat16 is not supported by {torch.cuda.get_device_name(device)}"
            "; use float16 or float32"
        )
    if dtype == "float64" and device.type == "mps":
        raise InputError("dtype float64 is not supported on mps; use float32")


def context_for(shape: Shape) -> Any:
    """The ``NormContext`` of a norm fed ``shape``: (N, C) is an MLP layer, more axes a conv."""
    from normbench.norms.catalog import NormContext

    spatial = len(shape) - 2
    return NormContext(
        model="bench",
        layout="spatial" if spatial else "features",
        widths=(shape[1],),
        spatial=spatial,
        batch_size=shape[0],
        placement="pre",
    )


def resolve_norm_cases(norms: Sequence[str | dict] | None) -> list[NormCase]:
    """Resolve norm arguments (names, ``name[k=v]``, mappings, ``all``) into specs."""
    from normbench.norms.catalog import NORMS, check_custom_importable, resolve_norm

    if not norms:
        return [NormCase(n, resolve_norm(n), explicit=False) for n in DEFAULT_NORMS]
    cases: list[NormCase] = []
    for arg in norms:
        if arg == ALL:
            cases += [
                NormCase(n, resolve_norm(n), explicit=False)
                for n, e in NORMS.items()
                if n not in _NOT_BENCHMARKABLE and not e.wraps_layer and n != "custom"
            ]
            continue
        parsed = parse_norm_arg(arg)
        label = arg if isinstance(arg, str) else norm_label(parsed)
        try:
            spec = resolve_norm(parsed)
        except OptionError as exc:
            if isinstance(parsed, str) and parsed not in NORMS:
                raise OptionError(unknown("norm", parsed, [*NORMS, ALL])) from None
            raise OptionError(f"norm '{label}': {exc}") from None
        if spec["kind"] in _NOT_BENCHMARKABLE:
            raise InputError(
                f"norm '{label}' {_NOT_BENCHMARKABLE[spec['kind']]}: there is "
                "nothing to benchmark (the copy row is the baseline)"
            )
        check_custom_importable(spec)
        cases.append(NormCase(label, spec, explicit=True))
    return cases


def incompatibility(case: NormCase, shape: Shape) -> str | None:
    """Why the norm cannot take ``shape`` (one sentence), or ``None`` when it can."""
    from normbench.norms.catalog import check_norm

    try:
        check_norm(case.spec, context_for(shape))
    except OptionError as exc:
        return f"norm '{case.label}' cannot take shape {format_shape(shape)}: {exc}"
    return None


# --- measurement ----------------------------------------------------------------------------


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What to call before reading the clock: wait for queued device work (no-op on CPU)."""
    from normbench.train.device import synchronize

    if device.type == "cpu":
        return lambda: None
    return functools.partial(synchronize, device)


def _tensor_bytes(tensors: Iterator[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t.is_floating_point())


def _random(shape: Shape, dtype: torch.dtype, device: torch.device, seed: int) -> torch.Tensor:
    import torch

    # A private generator: benchmarking must not move the caller's global RNG state.
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)


def _norm_fn(layer: torch.nn.Module, x: torch.Tensor, pass_: str) -> Callable[[], object]:
    """The closure to time: a forward, or a forward then a backward from a fixed dy."""
    import torch

    if pass_ == "forward":
        # Timed under no_grad (see run_bench): the layer's forward kernel, no graph recording.
        return lambda: layer(x)
    xg = x.detach().requires_grad_(True)
    dy = torch.randn_like(x)
    inputs = [xg, *(p for p in layer.parameters() if p.requires_grad)]

    def fwd_bwd() -> object:
        # autograd.grad returns fresh gradients instead of accumulating into .grad, so every
        # call does the same work (no extra read-add-write of old gradients).
        return torch.autograd.grad(layer(xg), inputs, dy, allow_unused=True)

    return fwd_bwd


def _timed(fn: Callable[[], object], grad: bool, **kw: Any) -> Timing:
    import torch

    with torch.set_grad_enabled(grad):
        return measure(fn, **kw)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _timing_fields(timing: Timing | None, num_bytes: int | None) -> dict[str, Any]:
    if timing is None:
        keys = (
            "median_s",
            "q1_s",
            "q3_s",
            "iqr_s",
            "iqr_fraction",
            "noisy",
            "repeats",
            "number",
            "total_s",
            "warmup_calls",
            "gbps",
        )
        return dict.fromkeys(keys)
    return {**timing.as_record(), "gbps": gbps(num_bytes or 0, timing.median_s)}


def plan_bench(
    cases: Sequence[NormCase], shapes: Sequence[Shape], say: Progress
) -> list[tuple[Shape, list[NormCase]]]:
    """Pair each shape with the norms that accept it; an explicit norm that cannot is an error."""
    plan = []
    for shape in shapes:
        accepted = []
        for case in cases:
            why = incompatibility(case, shape)
            if why and case.explicit:
                raise OptionError(why)
            if why:
                say(f"skip: {why}")
            else:
                accepted.append(case)
        if not accepted:
            raise InputError(f"no norm to benchmark accepts shape {format_shape(shape)}")
        plan.append((shape, accepted))
    return plan


def _bench_copy(x: torch.Tensor, base: dict[str, Any], timing_kw: dict[str, Any]) -> dict:
    """The roof: a device-to-device copy of the same tensor, measured in the same run."""
    import torch

    dst = torch.empty_like(x)
    dst.copy_(x)  # warm: the destination's pages exist before the first timed call
    kw = {
        **timing_kw,
        "repeats": max(timing_kw["repeats"], COPY_MIN_REPEATS),
        "warmup_time": max(timing_kw.get("warmup_time") or 0.0, 0.1),
    }
    timing = _timed(lambda: dst.copy_(x), False, **kw)
    num_bytes = copy_bytes(x.numel() * x.element_size())
    fields = _timing_fields(timing, num_bytes)
    return {
        "norm": "copy",
        "kind": "copy",
        **base,
        "mode": None,
        "pass": "copy",
        "compiled": None,
        "status": "ok",
        "error": None,
        "bytes": num_bytes,
        **fields,
        "copy_gbps": fields["gbps"],
        "copy_fraction": 1.0,
        "spec": None,
    }


def _compiled(layer: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(layer)`` from a clean slate: each measurement compiles its own graph for
    its own shape (no recompilation limit, no dynamic shapes carried over from another)."""
    import torch

    torch._dynamo.reset()
    return torch.compile(layer)  # type: ignore[return-value]


def _bench_layer(
    case: NormCase,
    x: torch.Tensor,
    mode: str,
    pass_: str,
    timing_kw: dict[str, Any],
    compiled: bool = False,
) -> tuple[Timing | None, int | None, str | None]:
    """Build a fresh layer and time one mode × pass: (timing, bytes, error sentence)."""
    import torch

    from normbench.norms import make

    num_bytes = None
    try:
        layer = make(x.shape[1], case.spec).to(device=x.device, dtype=x.dtype)
        layer.train(mode == "train")
        params, buffers = _tensor_bytes(layer.parameters()), _tensor_bytes(layer.buffers())
        x_bytes = x.numel() * x.element_size()
        num_bytes = pass_bytes(pass_, x_bytes, params, buffers, mode == "train")
        fn = _norm_fn(_compiled(layer) if compiled else layer, x, pass_)
        if compiled:  # compile outside the timing: the first call traces and builds kernels
            with torch.set_grad_enabled(pass_ != "forward"):
                fn()
        return _timed(fn, pass_ != "forward", **timing_kw), num_bytes, None
    except Exception as exc:  # a failed layer is a row, not a crash (timm)
        if isinstance(exc, torch.OutOfMemoryError) and x.device.type == "cuda":
            torch.cuda.empty_cache()
        return None, num_bytes, _one_line(exc)


def run_bench(
    norms: Sequence[str | dict] | None = None,
    shapes: Sequence[str | Sequence[int]] | None = None,
    dtypes: Sequence[str] = ("float32",),
    device: str = "auto",
    *,
    modes: Sequence[str] = ("train",),
    passes: Sequence[str] = PASSES,
    repeats: int = 10,
    min_time: float = 1.0,
    warmup_time: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    warm_outputs: bool = True,
    threads: int | None = None,
    compiles: Sequence[bool] = (False,),
) -> list[dict[str, Any]]:
    """Benchmark norm layers; return one flat record per measurement (copy rows included).

    ``warm_outputs`` (CPU): keep freed memory in the process so a layer's output reuses the
    previous call's pages (``warm_allocator``); ``False`` measures what a plain process pays,
    page faults of fresh large outputs included. Every record says which (``outputs``).
    ``threads``: torch intra-op threads for the whole benchmark (default: torch's setting).
    ``compiles``: False times the layer as written (eager), True through ``torch.compile``
    (compiled before the timing starts); records say which (``compiled``).

    ``norms``: names, ``name[k=v]`` strings or mappings (``None``: batch, layer, rms, each only
    where it accepts the shape; ``"all"``: every benchmarkable norm likewise). Norms named
    explicitly must accept every shape, otherwise ``OptionError``. ``passes`` are ``forward``
    and/or ``forward+backward``; ``modes`` ``train`` and/or ``eval``. Bad input raises
    ``InputError``/``OptionError`` before anything is timed; a layer that fails while running
    becomes a record with ``status: "error"``.
    """
    import torch

    say = progress or (lambda _msg: None)
    if not 1 <= repeats <= MAX_REPEATS:
        raise InputError(f"repeats must be between 1 and {MAX_REPEATS:,}, got {repeats}")
    if finite_number(min_time) is None or not 0 <= min_time <= MAX_MIN_TIME:
        raise InputError(
            f"min-time must be between 0 and {MAX_MIN_TIME:g} seconds, got {min_time} "
            "(a measurement must end)"
        )
    for value, allowed, what in ((modes, MODES, "mode"), (passes, PASSES, "pass")):
        for v in value:
            if v not in allowed:
                raise InputError(unknown(what, v, allowed))
    dev = resolve_device(device)
    dtype_names = [parse_dtype(d) for d in dtypes]
    for d in dtype_names:
        check_dtype(d, dev)
    shape_list = [parse_shape(s) for s in (shapes or DEFAULT_SHAPES)]
    for shape in shape_list:  # before anything is allocated: one sentence, not an OOM
        for d in dtype_names:
            check_fits(
                shape,
                LIVE_COPIES * max(4, getattr(torch, d).itemsize),
                f"--shape {format_shape(shape)}",
                f" ({d}: the input, its output and their gradients)",
                device_memory(dev),
            )
    plan = plan_bench(resolve_norm_cases(norms), shape_list, say)

    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    outputs = "fresh"
    if dev.type == "cpu" and warm_outputs and warm_allocator():
        outputs = "warm"
    cache = last_level_cache_bytes() if dev.type == "cpu" else None
    timing_kw = {
        "sync": synchronizer(dev),
        "min_time": min_time,
        "repeats": repeats,
        "warmup_time": warmup_time,
    }
    per_copy = len(modes) * len(passes) * len(compiles)
    total = sum(len(dtype_names) * (1 + len(c) * per_copy) for _, c in plan)
    records: list[dict[str, Any]] = []
    for shape, accepted in plan:
        for dtype_name in dtype_names:
            base = {
                "shape": format_shape(shape),
                "dtype": dtype_name,
                "device": str(dev),
                "threads": threads,
                "outputs": outputs,
            }
            x = _random(shape, getattr(torch, dtype_name), dev, seed)
            records.append(_bench_copy(x, base, timing_kw))
            copy_gbps = records[-1]["gbps"]
            copy_iqr = records[-1]["iqr_fraction"]
            say(f"[{len(records)}/{total}] copy {base['shape']} {dtype_name}: {copy_gbps:.2f} GB/s")
            for case, compiled, mode, pass_ in itertools.product(accepted, compiles, modes, passes):
                timing, num_bytes, error = _bench_layer(case, x, mode, pass_, timing_kw, compiled)
                fields = _timing_fields(timing, num_bytes)
                records.append(
                    {
                        "norm": case.label,
                        "kind": case.spec["kind"],
                        **base,
                        "mode": mode,
                        "pass": pass_,
                        "compiled": compiled,
                        "status": "error" if error else "ok",
                        "error": error,
                        "bytes": num_bytes,
                        **fields,
                        "copy_gbps": copy_gbps,
                        "copy_fraction": fields["gbps"] / copy_gbps if timing else None,
                        "copy_iqr_fraction": copy_iqr,
                        "spec": case.spec,
                    }
                )
                records[-1]["roof_note"] = roof_note(records[-1], dev.type, cache)
                say(f"[{len(records)}/{total}] {_progress_text(records[-1])}")
    return records


def device_memory(device: torch.device) -> int:
    """Memory of ``device`` in bytes: the GPU's own, else this machine's."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return physical_memory()


def _progress_text(rec: dict[str, Any]) -> str:
    """One line per finished measurement for stderr."""
    compiled = " compiled" if rec.get("compiled") else ""
    head = f"{rec['norm']}{compiled} {rec['shape']} {rec['dtype']} {rec['mode']} {rec['pass']}"
    if rec["status"] != "ok":
        return f"{head}: failed — {rec['error']}"
    noisy = " (noisy)" if rec["noisy"] else ""
    note = f" — {rec['roof_note']}" if rec.get("roof_note") else ""
    return (
        f"{head}: {format_seconds(rec['median_s'])}, IQR {rec['iqr_fraction']:.1%}, "
        f"{rec['gbps']:.2f} GB/s = {rec['copy_fraction']:.1%} of copy{noisy}{note}"
    )
