"""Error rate of ``run --until-decided`` on identical variants, simulated (no training).

Two variants draw every seed's value from the same normal distribution, so any *better* or
*worse* is a false decision. Each simulated suite goes through the same looks, alpha
spending, Holm family and freezing as a real run (``normbench.execute.sequential``), on the
same claim code; "naive" re-tests at the full α at every look instead, for contrast.

    python benchmarks/sequential_error.py                 # 2000 suites a setting
    python benchmarks/sequential_error.py --reps 500 --n0 3 --max-seeds 10
"""

from __future__ import annotations

import argparse

import numpy as np

from normbench.analysis.claims import evaluate_claims
from normbench.analysis.stats import alpha_per_look
from normbench.execute.sequential import SPENDING, plan_looks, take_look

CLAIM = {"text": "B beats A", "metric": "final_test_acc", "better": {"v": "b"}, "than": {"v": "a"}}


def _variant(name: str, values: np.ndarray) -> dict:
    return {
        "variant_name": f"v={name}",
        "variant_id": name,
        "params": {"v": name},
        "metrics": {
            "final_test_acc": {"values": [float(x) for x in values], "mean": float(values.mean())}
        },
    }


def simulate(
    reps: int,
    n0: int,
    max_seeds: int,
    *,
    sd: float,
    naive: bool = False,
    seed: int = 0,
    mean: float = 0.9,
) -> dict[str, float]:
    """Outcome shares over ``reps`` simulated suites, and the mean seeds per variant used."""
    rng = np.random.default_rng(seed)
    looks = plan_looks(n0, max_seeds)
    alphas = [0.05] * len(looks) if naive else alpha_per_look(looks, 0.05, SPENDING)
    counts = {"better": 0, "worse": 0, "equivalent": 0, "undecided": 0}
    seeds_used = 0
    for _ in range(reps):
        draws = {name: rng.normal(mean, sd, max_seeds) for name in ("a", "b")}
        frozen: dict = {}
        for k, n in enumerate(looks):
            variants = [_variant(name, x[:n]) for name, x in draws.items()]
            result = evaluate_claims([CLAIM], variants, alpha=alphas[k], frozen=frozen)[0]
            _, open_items, _ = take_look(result["pairs"], frozen, k + 1, n)
            if not open_items:
                break
        seeds_used += n
        verdict = next(iter(frozen.values()))["verdict"] if frozen else "undecided"
        counts[verdict] += 1
    return {**{k: v / reps for k, v in counts.items()}, "mean_seeds": seeds_used / reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--n0", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=10)
    args = parser.parse_args()
    looks = plan_looks(args.n0, args.max_seeds)
    print(
        f"identical variants, looks at {looks} seeds, alpha 0.05, margin ±0.01, "
        f"{args.reps} simulated suites per row"
    )
    print(
        f"{'sd':>6} {'design':>22} {'false better':>13} {'false worse':>12} "
        f"{'equivalent':>11} {'undecided':>10} {'mean seeds':>11}"
    )
    for sd in (0.003, 0.01, 0.03):
        for naive in (False, True):
            r = simulate(args.reps, args.n0, args.max_seeds, sd=sd, naive=naive)
            name = "naive re-test each look" if naive else f"{SPENDING} spending"
            print(
                f"{sd:>6g} {name:>22} {r['better']:>13.4f} {r['worse']:>12.4f} "
                f"{r['equivalent']:>11.4f} {r['undecided']:>10.4f} {r['mean_seeds']:>11.2f}"
            )
    print(
        "goal: false better ≤ 0.025 (half of the two-sided α = 0.05), false better + worse ≤ 0.05"
    )


if __name__ == "__main__":
    main()
