"""Adaptive seeds (``run --until-decided``): add seeds only where a verdict is still undecided.

The design is fixed before the first result, so looking at the data repeatedly stays valid:

* **Planned looks.** Seeds per variant at each look: the suite's seed count n₀, then up to
  three more looks evenly spaced up to ``--max-seeds`` N (3 → 10 gives 3, 5, 8, 10).
* **Alpha spending.** Look k tests at αₖ, the increment of the O'Brien–Fleming-type
  Lan–DeMets spending function at nₖ / N (``analysis.stats.alpha_per_look``). The αₖ add up
  to α = 0.05 and every look is a valid test at its αₖ, so by the union bound (Bonferroni over
  looks) the chance of any false better/worse over the whole procedure stays ≤ α (and so
  does that of any false equivalent), whatever the correlation between looks. Within a look, the
  claims (and the ``--reference`` contrasts) are each one Holm family at αₖ.
* **Stopping.** A pair decided at look k (better, worse, equivalent) is frozen with the
  effect measured then; only the variants of undecided pairs get the next look's seeds.
  The procedure ends when nothing is undecided or the budget is spent.
* **Resume.** Every look is computed from the result files restricted to the seeds that look
  planned, so a resumed run replays the earlier looks from disk (nothing is retrained) and
  ends exactly where an uninterrupted one does.

``benchmarks/sequential_error.py`` measures the false "better" rate of this procedure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from normbench.analysis.stats import alpha_per_look
from normbench.analysis.verdicts import ALPHA
from normbench.errors import InputError
from normbench.results.store import RunDir

SPENDING = "obf"
MAX_EXTRA_LOOKS = 3
DEFAULT_MAX_SEEDS = 10


def plan_looks(n0: int, max_seeds: int, extra: int = MAX_EXTRA_LOOKS) -> list[int]:
    """Seeds per variant at each planned look: n₀, then ≤ ``extra`` looks evenly up to N."""
    if max_seeds <= n0:
        return [n0]
    steps = min(extra, max_seeds - n0)
    return sorted({n0 + round((max_seeds - n0) * k / steps) for k in range(steps + 1)})


def seed_list(base: list[int], n: int) -> list[int]:
    """The first ``n`` seeds: the suite's own, then the next unused integers."""
    out = list(base[:n])
    nxt = max(base, default=-1) + 1
    while len(out) < n:
        if nxt not in out:
            out.append(nxt)
        nxt += 1
    return out


def _items(claims: list[dict[str, Any]], relative: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tested item of one look: claim pairs, published rows and reference contrasts."""
    out = []
    for r in claims:
        out += r["rows"] if "published" in r else r["pairs"]
    for row in relative:
        out += list(row.get("contrasts", {}).values())
    return out


def _ids(item: dict[str, Any]) -> list[str]:
    """The variants an item compares (both sides, or the one against a published number)."""
    if "better_id" in item:
        return [item["better_id"], item["than_id"]]
    if "variant_id" in item:
        return [item["variant_id"]]
    return list(item["ids"])


def evaluate_look(
    summary: dict[str, Any],
    claims: list[dict[str, Any]],
    reference: str | None,
    alpha: float,
    frozen: dict[str, Any],
) -> list[dict[str, Any]]:
    """Every item of a look, decided at ``alpha`` with the ``frozen`` decisions kept."""
    from normbench.analysis.claims import evaluate_claims
    from normbench.analysis.relative import decide_reference, parse_reference, relative_rows

    results = evaluate_claims(claims, summary["variants"], alpha=alpha, frozen=frozen)
    relative: list[dict[str, Any]] = []
    if reference:
        relative = relative_rows(summary, parse_reference(reference, summary))
        decide_reference(relative, frozen, alpha=alpha)
    return _items(results, relative)


def take_look(
    items: list[dict[str, Any]], frozen: dict[str, Any], look: int, seeds: int
) -> tuple[int, list[dict[str, Any]], list[str]]:
    """Freeze what this look decided (in ``frozen``); return how many, the undecided items
    and the variants they involve (those get the next look's seeds)."""
    new = [i for i in items if not i.get("frozen") and i["verdict"] != "undecided"]
    for item in new:
        frozen[item["key"]] = {
            **{k: v for k, v in item.items() if k != "key"},
            "look": look,
            "seeds_at_decision": seeds,
        }
    open_items = [i for i in items if i["verdict"] == "undecided"]
    return len(new), open_items, sorted({vid for i in open_items for vid in _ids(i)})


def _look_summary(run_dir: Path, seeds_of: dict[str, list[int]], reference: str | None) -> dict:
    """The run's summary restricted to the seeds this look planned (later ones are ignored)."""
    from normbench.analysis.aggregate import load_run, summarize

    run = load_run(run_dir, warn=lambda message: None)
    run.records = [
        r for r in run.records if r.get("seed") in seeds_of.get(str(r.get("variant_id")), [])
    ]
    run.manifest = {k: v for k, v in run.manifest.items() if k != "until_decided"}
    return summarize(run, reference=None)


@dataclass
class SequentialOutcome:
    """What ``run_until_decided`` did: the last round's outcome and the looks taken."""

    outcome: Any  # execute.run.RunOutcome of the last round
    looks: list[int]
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def undecided(self) -> int:
        return self.rounds[-1]["undecided"] if self.rounds else 0


def _with_seeds(suite: Any, seeds_of: dict[str, list[int]]) -> Any:
    """A copy of the suite whose variants carry this look's seeds."""
    return replace(suite, variants=[replace(v, seeds=list(seeds_of[v.id])) for v in suite.variants])


def _prepare_dir(run_dir: Path, suite: Any) -> None:
    """Check that the run is this suite (seeds aside: looks add them), then store this look's."""
    from normbench.execute.plan import suite_difference

    rd = RunDir(run_dir)
    stored = rd.read_resolved()
    if stored is None:
        raise InputError(f"--resume: {run_dir} has no resolved.json, so it cannot be resumed")
    wanted = suite.resolved()
    seeds = {v["id"]: v["seeds"] for v in wanted["variants"]}
    stored = copy.deepcopy(stored)
    for v in stored.get("variants") or []:
        v["seeds"] = seeds.get(v.get("id"), v.get("seeds"))
    why = suite_difference(stored, wanted)
    if why:
        raise InputError(f"cannot resume {run_dir}: suite differs from the run's: {why}")
    rd.write_json("resolved.json", wanted)


def _record(run_dir: Path, state: dict[str, Any]) -> None:
    """Store the design and the decisions so far in the manifest (the report reads them)."""
    rd = RunDir(run_dir)
    manifest = rd.read_manifest()
    manifest["until_decided"] = state
    manifest["tasks"] = state["rounds"][-1]["tasks"] if state["rounds"] else manifest.get("tasks")
    rd.write_manifest(manifest)


@dataclass
class _Loop:
    """One ``--until-decided`` procedure: its fixed design and the state of its looks."""

    suite: Any
    out: Path
    options: Any
    command: list[str] | None
    execute: Callable[[Any], Any]
    on_look: Callable[[dict[str, Any]], None] | None
    reference: str | None
    rel_cost: bool
    looks: list[int]
    alphas: list[float]
    state: dict[str, Any]
    result: SequentialOutcome
    run_dir: Path | None = None

    def run(self) -> None:
        """Look after look (see the module docstring); returns early when interrupted."""
        from normbench.execute.run_plan import plan_run, resume_target

        base = {v.id: list(v.seeds) for v in self.suite.variants}
        seeds_of = {vid: list(s) for vid, s in base.items()}
        frozen = self.state["decisions"]
        for k, n in enumerate(self.looks):
            look_suite = _with_seeds(self.suite, seeds_of)
            opts = self.options
            target = self.run_dir
            if target is None and self.options.resume:  # replay the resumed run from its files
                target = resume_target(self.options.resume, self.out, self.suite).path
            if target is not None:
                _prepare_dir(target, look_suite)
                opts = replace(self.options, resume=str(target))
            plan = plan_run(
                look_suite,
                self.out,
                opts,
                self.command,
                reference=self.reference,
                rel_cost=self.rel_cost,
            )
            outcome = self.execute(plan)
            self.result.outcome = outcome
            self.run_dir = outcome.run_dir.path
            if outcome.status == "interrupted":
                return
            summary = _look_summary(self.run_dir, seeds_of, self.reference)
            items = evaluate_look(
                summary, self.suite.claims, self.reference, self.alphas[k], frozen
            )
            decided, open_items, involved = take_look(items, frozen, k + 1, n)
            last = k == len(self.looks) - 1 or not open_items
            self.state["alpha_now"] = self.alphas[k]
            info = {
                "look": k + 1,
                "seeds": n,
                "alpha": self.alphas[k],
                "decided": decided,
                "undecided": len(open_items),
                "tasks": sum(map(len, seeds_of.values())),
                "next": [] if last else involved,
            }
            self.state["rounds"].append(info)
            self.result.rounds.append(info)
            _record(self.run_dir, self.state)
            if self.on_look is not None:
                self.on_look(info)
            if last:
                return
            for vid in involved:
                seeds_of[vid] = seed_list(base[vid], self.looks[k + 1])


def run_until_decided(
    suite: Any,
    out: Path,
    options: Any,
    *,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    reference: str | None = None,
    command: list[str] | None = None,
    execute: Callable[[Any], Any] | None = None,
    on_look: Callable[[dict[str, Any]], None] | None = None,
    alpha: float = ALPHA,
    rel_cost: bool = True,
) -> SequentialOutcome:
    """Run ``suite`` look by look until every claim (and reference contrast) is decided.

    ``execute(plan)`` trains one look's pending tasks (default ``execute.run.execute_plan``);
    ``on_look(round)`` is told what each look decided; ``reference`` and ``rel_cost`` are
    passed to ``execute.run_plan.plan_run``.
    """
    from normbench.execute.run import execute_plan
    from normbench.execute.run_dir import finish_run

    if not suite.claims and not reference:
        raise InputError(
            "--until-decided needs claims: in the suite or --reference KEY=VALUE to decide on"
        )
    if options.shard is not None:
        raise InputError("--until-decided cannot run a shard: the looks need every variant")
    n0 = min(len(v.seeds) for v in suite.variants)
    if max_seeds < n0:
        raise InputError(f"--max-seeds {max_seeds} is below the suite's {n0} seeds")
    looks = plan_looks(n0, max_seeds)
    alphas = alpha_per_look(looks, alpha, SPENDING)
    state: dict[str, Any] = {
        "alpha": alpha,
        "spending": SPENDING,
        "looks": looks,
        "alpha_per_look": alphas,
        "max_seeds": max_seeds,
        "reference": reference,
        "rounds": [],
        "decisions": {},
    }
    loop = _Loop(
        suite,
        Path(out),
        options,
        command,
        execute or execute_plan,
        on_look,
        reference,
        rel_cost,
        looks,
        alphas,
        state,
        SequentialOutcome(None, looks),
    )
    from normbench.execute.signals import stop_on_signals

    try:
        # Between looks no run holds the signals: SIGINT/SIGTERM then stop the loop here.
        with stop_on_signals(raise_interrupt=True):
            loop.run()
    except KeyboardInterrupt:  # between looks: what finished is saved, --resume replays it
        if loop.run_dir is not None:
            finish_run(RunDir(loop.run_dir), "interrupted")
        raise
    return loop.result
