"""Layer micro-benchmarks: time each norm's forward and forward+backward against a copy roof."""

from normbench.bench.parse import format_shape, parse_shape
from normbench.bench.render import FORMATS, render_bench
from normbench.bench.runner import DEFAULT_NORMS, DEFAULT_SHAPES, run_bench
from normbench.bench.timing import NOISY_IQR_FRACTION, Timing, measure

__all__ = [
    "DEFAULT_NORMS",
    "DEFAULT_SHAPES",
    "FORMATS",
    "NOISY_IQR_FRACTION",
    "Timing",
    "format_shape",
    "measure",
    "parse_shape",
    "render_bench",
    "run_bench",
]
