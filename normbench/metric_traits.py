"""A metric's traits (direction, unit, timing kind): the leaf type every catalog declares with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# How a timing metric was measured; "" for a metric that is not a timing. Every timing metric is
# compared on log values (timing noise is multiplicative); the kind decides the rest:
#   interval  – median over the eval intervals: the figures "(noisy)" describes
#   breakdown – forward / backward / optimizer split, timed after training
#   wall      – wall time summed over the run
#   target    – time until a target was reached (reported with the convergence figures)
#   relative  – ratio to the reference variant, timed side by side ("(noisy)" from its rounds)
Timing = Literal["", "interval", "breakdown", "wall", "target", "relative"]
TIMING_KINDS: tuple[Timing, ...] = tuple(k for k in get_args(Timing) if k)


@dataclass(frozen=True)
class Metric:
    """One metric a result may carry; ``higher_is_better`` decides what a regression is."""

    name: str
    higher_is_better: bool
    unit: str
    summary: str
    source: str = "core"  # "core" or the diagnostic that adds it
    timing: Timing = ""

    def __post_init__(self) -> None:
        # A typo in a kind would silently drop the metric from the timing treatment.
        if self.timing and self.timing not in TIMING_KINDS:
            raise ValueError(f"metric '{self.name}': unknown timing kind '{self.timing}'")
