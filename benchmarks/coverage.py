"""Simulation study: do asrfair's intervals cover and its gap test hold its level?

Statistics are the product, so their claims are measured, not assumed. Each replicate draws
speakers whose own error rates vary around a group's true corpus WER (Beta-distributed), each
speaker with a random number of utterances of random length, and errors ~ Binomial(words,
speaker rate). The true group WER is then the Beta mean, and the true gap the difference of means.

Measured, with Monte-Carlo standard errors (sqrt(p(1-p)/reps)):
  1. coverage of 95% group intervals: percentile (the old default), t, BCa, bootstrap-t, and
     auto (the default: bootstrap-t from 5 speakers a group, t below);
  2. coverage of 95% gap (difference) intervals, the same methods;
  3. type-I error of the gap test at 0.05: raw-difference permutation (old), studentised
     permutation alone, and asrfair's test (the larger of the studentised permutation p and the
     p-value of the default difference interval), in null scenarios of equal and unequal size
     and spread;
  4. power of both tests where the gap is real.

    python benchmarks/coverage.py                # 1,000 replicates a scenario, ~6 min on 2 cores
    python benchmarks/coverage.py --reps 200     # a quick look

tests/test_coverage.py runs a small seeded slice of the same code on every CI run.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from asrfair import stats
from asrfair.stats import StatsConfig

METHODS = ("percentile", "t", "bca", "bootstrap-t", "auto")
# Beta concentration of speakers' own rates: sd = sqrt(m(1-m)/(kappa+1)), 0.03, 0.12 and 0.2 at
# m = 0.2. "moderate" against "tight" reproduces the review's case (raw test: 17% at 5%).
SPREAD = {"tight": 200.0, "moderate": 10.0, "wide": 3.0}
LENGTH = {"short": (5, 6), "long": (20, 15)}  # (mean utterances per speaker, mean words)


@dataclass(frozen=True)
class Group:
    speakers: int
    wer: float = 0.2
    spread: str = "wide"
    length: str = "short"


def draw_group(g: Group, rng: np.random.Generator) -> np.ndarray:
    """Per-speaker [errors, words] for one simulated group."""
    utts, words = LENGTH[g.length]
    n_utts = 1 + rng.poisson(utts - 1, g.speakers)
    n_words = n_utts + rng.poisson((words - 1) * n_utts)  # each utterance 1 + Poisson words
    kappa = SPREAD[g.spread]
    rates = rng.beta(g.wer * kappa, (1 - g.wer) * kappa, g.speakers)
    errors = rng.binomial(n_words, rates)
    return np.column_stack([errors, n_words]).astype(float)


def _covers(ci: tuple[float | None, float | None] | None, truth: float) -> bool:
    """Whether the interval holds the truth; a None end is open, a None interval holds nothing."""
    if ci is None:
        return False
    low = -math.inf if ci[0] is None else ci[0]
    return low <= truth <= (math.inf if ci[1] is None else ci[1])


def raw_permutation_p(a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """The old test: permute group labels on the raw difference of corpus rates."""

    def diff(in_a: np.ndarray, total: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate_b = (total[0] - in_a[..., 0]) / (total[1] - in_a[..., 1])
            return np.asarray(in_a[..., 0] / in_a[..., 1] - rate_b)

    pooled = np.concatenate([a, b])
    total = pooled.sum(axis=0)
    observed = abs(float(diff(a.sum(axis=0), total)))
    exact, count, chunks = stats._relabelings(len(a), len(b), n_perm, rng)
    extreme = 0
    for index, mask in chunks:
        in_a = pooled[index].sum(axis=1) if index is not None else mask @ pooled
        extreme += int(np.sum(np.abs(diff(in_a, total)) >= observed - 1e-12))
    return extreme / count if exact else (extreme + 1) / (count + 1)


def group_coverage(
    g: Group, reps: int, draws: int, seed: int, methods: tuple[str, ...] = METHODS
) -> dict[str, float]:
    """Share of replicates whose 95% interval holds the true WER, per method."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(methods, 0)
    for _ in range(reps):
        sample = stats.moments(draw_group(g, rng))
        boot = [stats.resample_totals(sample, draws, rng)]
        for method in methods:
            cfg = StatsConfig(n_boot=draws, interval=method)
            hits[method] += _covers(stats.estimate("rate", [sample], cfg, boot).ci, g.wer)
    return {m: hits[m] / reps for m in methods}


def gap_study(
    a: Group,
    b: Group,
    reps: int,
    draws: int,
    seed: int,
    methods: tuple[str, ...] = METHODS,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Rejection rates of both tests and coverage of the gap intervals, per method."""
    rng = np.random.default_rng(seed)
    truth = a.wer - b.wer
    out = dict.fromkeys(["old_test", "perm_test", "new_test", *methods], 0.0)
    default = StatsConfig(n_boot=draws)
    for _ in range(reps):
        sa, sb = draw_group(a, rng), draw_group(b, rng)
        ma, mb = stats.moments(sa), stats.moments(sb)
        out["old_test"] += raw_permutation_p(ma[:, :2], mb[:, :2], draws, rng) <= alpha
        p_perm = stats.permutation_test(ma, mb, draws, rng).p_values[0]
        out["perm_test"] += p_perm is not None and p_perm <= alpha
        boot = [stats.resample_totals(ma, draws, rng), stats.resample_totals(mb, draws, rng)]
        # asrfair's gap p-value: the larger of the permutation p and the default interval's.
        p_interval = stats.estimate("diff", [ma, mb], default, boot).p_zero
        p_new = max(p_perm or 1.0, 1.0 if p_interval is None else p_interval)
        out["new_test"] += p_new <= alpha
        for method in methods:
            cfg = StatsConfig(n_boot=draws, interval=method)
            out[method] += _covers(stats.estimate("diff", [ma, mb], cfg, boot).ci, truth)
    return {k: v / reps for k, v in out.items()}


def group_scenarios() -> Iterator[Group]:
    for length in LENGTH:
        for spread in SPREAD:
            for k in (3, 5, 10, 20, 40):
                yield Group(k, spread=spread, length=length)


TEST_COLUMNS = ("old_test", "perm_test", "new_test", *METHODS)
SPREAD_PAIRS = (
    ("tight", "tight"),
    ("moderate", "moderate"),
    ("wide", "wide"),
    ("moderate", "tight"),
    ("wide", "tight"),
)


def null_scenarios() -> Iterator[tuple[Group, Group]]:
    for ka, kb in ((3, 3), (5, 5), (10, 10), (20, 20), (40, 40), (5, 20), (10, 40), (5, 40)):
        for spread_a, spread_b in SPREAD_PAIRS:
            yield Group(ka, spread=spread_a), Group(kb, spread=spread_b)
    yield Group(10, spread="moderate", length="long"), Group(40, spread="tight", length="long")
    yield Group(10, spread="wide", length="long"), Group(40, spread="tight", length="long")


def power_scenarios() -> Iterator[tuple[Group, Group]]:
    for ka, kb in ((5, 5), (10, 10), (20, 20), (10, 40), (40, 40)):
        yield Group(ka, wer=0.3, spread="moderate"), Group(kb, wer=0.2, spread="moderate")


def _se(p: float, reps: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / reps)


def _cell(p: float, reps: int) -> str:
    return f"{p:.3f} ({_se(p, reps):.3f})"


def _label(g: Group) -> str:
    return f"{g.speakers} {g.spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replicates per scenario")
    parser.add_argument("--draws", type=int, default=999, help="bootstrap draws / permutations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    reps, draws = args.reps, args.draws
    groups = list(group_scenarios())
    nulls = list(null_scenarios())
    powers = list(power_scenarios())
    with ProcessPoolExecutor(args.workers) as pool:
        cover = pool.map(
            group_coverage,
            groups,
            [reps] * len(groups),
            [draws] * len(groups),
            [args.seed + i for i in range(len(groups))],
        )
        pairs = nulls + powers
        gaps = pool.map(
            gap_study,
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            [reps] * len(pairs),
            [draws] * len(pairs),
            [args.seed + 1000 + i for i in range(len(pairs))],
        )
        cover_rows, gap_rows = list(cover), list(gaps)
    print(f"# Simulation study: {reps:,} replicates a scenario, {draws} draws, seed {args.seed}")
    print("\nMonte-Carlo standard errors in brackets. True WER 0.2 unless said.\n")
    print("## 1. Coverage of 95% group intervals (goal: >= 0.93 from 10 speakers, >= 0.90 at 5)\n")
    print("| speakers | spread | utterances x words | " + " | ".join(METHODS) + " |")
    print("|---|---|---|" + "---:|" * len(METHODS))
    for g, row in zip(groups, cover_rows, strict=True):
        utts, words = LENGTH[g.length]
        cells = " | ".join(_cell(row[m], reps) for m in METHODS)
        print(f"| {g.speakers} | {g.spread} | {utts} x {words} | {cells} |")
    print(
        "\n## 2. Gap test under the null (type-I error at 0.05; goal <= 0.06) and gap intervals\n"
    )
    header = "| group a | group b | old test | permutation alone | asrfair test | "
    header += " | ".join(METHODS) + " |"
    print(header + "\n|---|---|---:|---:|---:|" + "---:|" * len(METHODS))
    for (a, b), row in zip(nulls, gap_rows[: len(nulls)], strict=True):
        cells = " | ".join(_cell(row[k], reps) for k in TEST_COLUMNS)
        suffix = " long" if a.length == "long" else ""
        print(f"| {_label(a)}{suffix} | {_label(b)}{suffix} | {cells} |")
    print("\n## 3. Power at 0.05 (WER 0.3 against 0.2, moderate spread) and interval coverage\n")
    print(header + "\n|---|---|---:|---:|---:|" + "---:|" * len(METHODS))
    for (a, b), row in zip(powers, gap_rows[len(nulls) :], strict=True):
        cells = " | ".join(_cell(row[k], reps) for k in TEST_COLUMNS)
        print(f"| {_label(a)} | {_label(b)} | {cells} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
