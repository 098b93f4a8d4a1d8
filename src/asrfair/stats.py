"""Speaker-level statistics: corpus rates, cluster bootstrap, gaps, paired tests.

Utterances of one speaker share a voice, a microphone and a room, so they are
not independent. Every interval here resamples whole speakers (clusters) and
sums their errors and words; resampling utterances would give intervals that
are too narrow. All draws are vectorised and seeded per (grouping, group), so
a number does not change when another metric or group is added to the run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Upper bound on the cells of one (draws x units) count matrix held at once.
_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class StatsConfig:
    """The knobs a reviewer asks about; all of them are printed with every report."""

    n_boot: int = 10_000
    n_perm: int = 10_000
    seed: int = 0
    confidence: float = 0.95
    min_speakers: int = 10

    def method(self, unit: str) -> dict[str, object]:
        return {
            "rate": "corpus-level: sum of errors / sum of reference tokens",
            "resampling_unit": unit,
            "bootstrap": "cluster (per group)" if unit == "speaker" else "utterance (per group)",
            "draws": self.n_boot,
            "seed": self.seed,
            "interval": "percentile",
            "confidence": self.confidence,
            "gap_test": f"permutation of group labels over {unit}s, two-sided",
            "permutations": self.n_perm,
            "p_adjust": "holm (within each grouping)",
            "min_speakers": self.min_speakers,
        }


def rng_for(seed: int, *key: str) -> np.random.Generator:
    """A generator keyed by seed and names, independent of call order."""
    words = [zlib.crc32(part.encode("utf-8")) for part in key]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def unit_sums(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Per-unit column sums of an (utterances x m) matrix, in first-seen unit order."""
    codes, uniques = pd.factorize(pd.Series(units), sort=False)
    values = np.asarray(values, dtype=np.float64).reshape(len(codes), -1)
    out = np.zeros((len(uniques), values.shape[1]))
    np.add.at(out, codes, values)
    return out


def _count_chunks(k: int, n_draws: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """How often each of ``k`` units is drawn, per bootstrap draw, in bounded chunks."""
    chunk = max(1, _CHUNK_CELLS // max(k, 1))
    for start in range(0, n_draws, chunk):
        b = min(chunk, n_draws - start)
        picks = rng.integers(0, k, size=(b, k))
        picks += (np.arange(b) * k)[:, None]
        yield np.bincount(picks.ravel(), minlength=b * k).reshape(b, k).astype(np.float64)


def resample_totals(sums: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Column totals of ``n_draws`` with-replacement draws of the rows (units) of ``sums``."""
    k = sums.shape[0]
    if k == 0 or n_draws == 0:
        return np.full((n_draws, sums.shape[1]), np.nan)
    return np.concatenate([counts @ sums for counts in _count_chunks(k, n_draws, rng)])


def ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """Elementwise rate; NaN (undefined) where the denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """Percentile interval over the defined draws; None when no draw is defined."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class RateEstimate:
    """A corpus-level rate with its bootstrap draws (None when intervals are off)."""

    numerator: float
    denominator: float
    draws: np.ndarray | None

    @property
    def value(self) -> float | None:
        return float(self.numerator / self.denominator) if self.denominator > 0 else None

    def interval(self, confidence: float) -> tuple[float, float] | None:
        if self.draws is None or self.value is None:
            return None
        return percentile_interval(self.draws, confidence)


def estimate_rate(sums: np.ndarray, cfg: StatsConfig, *key: str) -> RateEstimate:
    """Rate of column 0 over column 1 of per-unit ``sums``, with cluster-bootstrap draws."""
    num, den = sums[:, 0].sum(), sums[:, 1].sum()
    if cfg.n_boot <= 0:
        return RateEstimate(float(num), float(den), None)
    totals = resample_totals(sums, cfg.n_boot, rng_for(cfg.seed, "boot", *key))
    return RateEstimate(float(num), float(den), ratio(totals[:, 0], totals[:, 1]))


def permutation_pvalue(
    sums_a: np.ndarray, sums_b: np.ndarray, n_perm: int, rng: np.random.Generator
) -> float | None:
    """Two-sided p-value of rate(a) - rate(b) under exchangeable group labels over units.

    Returns None when either rate is undefined or no permutations were asked for.
    """
    observed = ratio(sums_a[:, 0].sum(), sums_a[:, 1].sum()) - ratio(
        sums_b[:, 0].sum(), sums_b[:, 1].sum()
    )
    if n_perm <= 0 or not np.isfinite(observed):
        return None
    pooled = np.concatenate([sums_a, sums_b])
    total = pooled.sum(axis=0)
    labels = np.zeros(len(pooled), dtype=np.float64)
    labels[: len(sums_a)] = 1.0
    extreme = 0
    chunk = max(1, _CHUNK_CELLS // len(pooled))
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        masks = rng.permuted(np.tile(labels, (b, 1)), axis=1)
        in_a = masks @ pooled
        diff = ratio(in_a[:, 0], in_a[:, 1]) - ratio(total[0] - in_a[:, 0], total[1] - in_a[:, 1])
        # A tiny tolerance so that ties with the observed split count as extreme.
        extreme += int(np.sum(np.abs(diff) >= abs(float(observed)) - 1e-12))
    return (extreme + 1) / (n_perm + 1)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment; None entries are skipped and stay None."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    adjusted: list[float | None] = [None] * len(pvalues)
    m = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Gap:
    """rate(a) - rate(b) and rate(a) / rate(b), with intervals from the groups' draws."""

    diff: float | None
    diff_ci: tuple[float, float] | None
    ratio: float | None
    ratio_ci: tuple[float, float] | None


def gap(a: RateEstimate, b: RateEstimate, confidence: float) -> Gap:
    if a.value is None or b.value is None:
        return Gap(None, None, None, None)
    diff_ci = ratio_ci = None
    if a.draws is not None and b.draws is not None:
        diff_ci = percentile_interval(a.draws - b.draws, confidence)
        ratio_ci = percentile_interval(ratio(a.draws, b.draws), confidence)
    rel = a.value / b.value if b.value > 0 else None
    return Gap(a.value - b.value, diff_ci, rel, ratio_ci)


@dataclass(frozen=True)
class Paired:
    """System B against system A on the same units: rate(B) - rate(A)."""

    rate_a: float | None
    rate_b: float | None
    diff: float | None
    diff_ci: tuple[float, float] | None
    p_b_better: float | None  # share of draws where B's rate is below A's


def paired(sums: np.ndarray, cfg: StatsConfig, *key: str) -> Paired:
    """Paired bootstrap (Bisani & Ney 2004) over per-unit [errors_a, errors_b, words] sums.

    Both systems see the very same speaker draws, so the speaker-to-speaker variation
    that they share cancels from the difference.
    """
    rate_a = ratio(sums[:, 0].sum(), sums[:, 2].sum())
    rate_b = ratio(sums[:, 1].sum(), sums[:, 2].sum())
    if not np.isfinite(rate_a):
        return Paired(None, None, None, None, None)
    diff = float(rate_b - rate_a)
    if cfg.n_boot <= 0:
        return Paired(float(rate_a), float(rate_b), diff, None, None)
    totals = resample_totals(sums, cfg.n_boot, rng_for(cfg.seed, "paired", *key))
    deltas = ratio(totals[:, 1] - totals[:, 0], totals[:, 2])
    defined = deltas[np.isfinite(deltas)]
    p_better = float(np.mean(defined < 0)) if defined.size else None
    return Paired(
        float(rate_a), float(rate_b), diff, percentile_interval(deltas, cfg.confidence), p_better
    )
