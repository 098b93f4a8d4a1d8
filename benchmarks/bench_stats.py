"""Statistics speed: the whole metric stage, many groups, and the bootstrap against others.

    .venv/bin/python benchmarks/bench_stats.py [--draws 10000] [--utterances 16000]

First the speed goals of the metric stage with the defaults (auto intervals: bootstrap-t with
10,000 draws; studentised permutation gaps with 10,000 relabelings): every default metric over
16,000 utterances, 800 speakers and 2 groups; then a grouping of 300 groups of 5 speakers;
then the other interval methods (the bootstrap ones draw once per group, shared by WER, CER
and the gaps).

Three ways to get 10,000-draw intervals of per-group WER on the same data:
1. asrfair: align once, then vectorised cluster draws over per-speaker error/word sums.
2. re-alignment per draw, as evaluate's ``strategy="bootstrap"`` does: each draw resamples
   speakers and scores every drawn utterance again (timed on a few draws, then scaled).
3. fairlearn's ``MetricFrame(n_boot=...)`` on precomputed counts (resamples rows, a Python
   loop of MetricFrames; timed on a few draws, then scaled). Skipped if not installed.
Run by hand; results go in benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from asrfair.metrics import DEFAULT_METRICS, run_metrics
from asrfair.plugins import installed
from asrfair.scoring import score, utterance_counts
from asrfair.stats import StatsConfig, unit_sums
from asrfair.text import identity

VOCAB = [f"mot{i}" for i in range(500)]


def make_transcripts(n_utts: int, n_speakers: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    speakers = rng.integers(0, n_speakers, n_utts)
    refs, hyps = [], []
    for spk in speakers:
        words = list(rng.choice(VOCAB, size=int(rng.integers(5, 16))))
        p = 0.08 + 0.06 * (spk % 2) + 0.03 * rng.random()
        hyp = [w if rng.random() > p else str(rng.choice(VOCAB)) for w in words]
        refs.append(" ".join(words))
        hyps.append(" ".join(hyp))
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n_utts)],
            "speaker": [f"s{s}" for s in speakers],
            "gender": np.where(speakers % 2 == 0, "male", "female"),
            "ref": refs,
            "hyp": hyps,
        }
    )


def make_many_groups(n_groups: int, per_group: int, seed: int = 0) -> pd.DataFrame:
    """``n_groups`` accents of ``per_group`` speakers, 4 utterances each."""
    frame = make_transcripts(n_groups * per_group * 4, n_groups * per_group, seed)
    speaker = np.repeat(np.arange(n_groups * per_group), 4)
    frame["speaker"] = [f"s{s}" for s in speaker]
    frame["accent"] = [f"acc{s // per_group:03d}" for s in speaker]
    return frame


def best_of(repeats: int, fn: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def realign_per_draw(frame: pd.DataFrame, n_draws: int, rng: np.random.Generator) -> float:
    """Seconds for n_draws of a speaker bootstrap that re-scores text on every draw."""
    start = time.perf_counter()
    for group, rows in frame.groupby("gender"):
        by_speaker = [g for _, g in rows.groupby("speaker")]
        for _ in range(n_draws):
            errors = words = 0
            for k in rng.integers(0, len(by_speaker), len(by_speaker)):
                for ref, hyp in zip(by_speaker[k]["ref"], by_speaker[k]["hyp"], strict=True):
                    counts = utterance_counts(ref, hyp)
                    errors += sum(counts[:3])
                    words += counts[3]
            _ = errors / words, group
    return time.perf_counter() - start


def fairlearn_per_draw(table: pd.DataFrame, n_draws: int) -> float | None:
    try:
        from fairlearn.metrics import MetricFrame
    except ImportError:
        return None
    errors = table[["w_sub", "w_del", "w_ins"]].sum(axis=1).to_numpy()

    def corpus_wer(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.sum(y_pred) / np.sum(y_true))

    start = time.perf_counter()
    MetricFrame(
        metrics=corpus_wer,
        y_true=table["w_n"].to_numpy(),
        y_pred=errors,
        sensitive_features=table["gender"],
        n_boot=n_draws,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--utterances", type=int, default=16_000)
    parser.add_argument("--speakers", type=int, default=800)
    parser.add_argument("--slow-draws", type=int, default=3, help="draws timed for the slow paths")
    args = parser.parse_args()

    frame = make_transcripts(args.utterances, args.speakers)
    start = time.perf_counter()
    table = score(frame, identity, groupings=["gender"])
    align_s = time.perf_counter() - start
    cfg = StatsConfig(n_boot=args.draws, n_perm=args.draws, seed=0)

    DEFAULTS = installed().chosen_metrics(DEFAULT_METRICS)

    def ours() -> None:
        run_metrics(table, cfg, installed().chosen_metrics(["group_wer"]))

    ours_s = best_of(3, ours)
    full_s = best_of(3, lambda: run_metrics(table, cfg, DEFAULTS))
    by_method = {
        method: best_of(1, lambda m=method: run_metrics(table, replace(cfg, interval=m), DEFAULTS))
        for method in ("t", "percentile", "bca")
    }
    many = make_many_groups(300, 5)
    start = time.perf_counter()
    many_table = score(many, identity, groupings=["accent"])
    many_align_s = time.perf_counter() - start
    many_s = best_of(1, lambda: run_metrics(many_table, cfg, DEFAULTS))
    # Sanity: the fast path's point estimate equals a direct computation.
    errors = table.word_errors
    sums = unit_sums(np.column_stack([errors, table.frame["w_n"]]), table.units())
    direct = errors.sum() / table.frame["w_n"].sum()
    assert abs(sums[:, 0].sum() / sums[:, 1].sum() - direct) < 1e-12

    slow = realign_per_draw(frame, args.slow_draws, np.random.default_rng(0))
    realign_s = slow / args.slow_draws * args.draws
    fl = fairlearn_per_draw(table.frame, args.slow_draws * 10)
    fairlearn_s = None if fl is None else fl / (args.slow_draws * 10) * args.draws

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"data: {args.utterances:,} utterances, {args.speakers} speakers, 2 groups; "
        f"{args.draws:,} draws per group"
    )
    print()
    print(
        f"| metric stage, defaults (auto intervals, {args.draws:,} draws and permutations) "
        "| seconds | goal |"
    )
    print("|---|---:|---:|")
    print(f"| all default metrics: 16k utterances, 800 speakers, 2 groups | {full_s:.3f} | < 1 |")
    print(
        f"| all default metrics: 300 groups x 5 speakers (6,000 utterances) | {many_s:.2f} "
        f"| < 15 (with alignment {many_align_s:.2f} s) |"
    )
    for method, seconds in by_method.items():
        print(f"| all default metrics, 2 groups, --interval {method} | {seconds:.3f} | |")
    print()
    print("| method | seconds | vs asrfair |")
    print("|---|---:|---:|")
    print(f"| asrfair: align once (16k utterances, words and chars) | {align_s:.3f} | |")
    print(f"| asrfair: speaker bootstrap, group WER intervals | {ours_s:.3f} | 1x |")
    print(
        f"| re-align per draw (evaluate-style), scaled from {args.slow_draws} draws | "
        f"{realign_s:,.0f} | {realign_s / ours_s:,.0f}x |"
    )
    if fairlearn_s is None:
        print("| fairlearn MetricFrame n_boot | not installed | |")
    else:
        print(
            f"| fairlearn MetricFrame n_boot (utterance rows), scaled from "
            f"{args.slow_draws * 10} draws | {fairlearn_s:,.1f} | {fairlearn_s / ours_s:,.0f}x |"
        )


if __name__ == "__main__":
    main()
