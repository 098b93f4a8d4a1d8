"""Speaker-level statistics: corpus rates, intervals, gap tests, paired comparisons.

Utterances of one speaker share a voice, a microphone and a room, so they are
not independent: the speaker is the unit of every interval and test here. A
group's rate is a ratio estimator sum(errors) / sum(tokens) over its speakers,
and everything a reviewer asks of it (its variance, a bootstrap draw, a
relabelling of groups) is a sum of five per-speaker moments
[e, n, e^2, e*n, n^2]. So one matrix product gives a draw or a permutation, and
WER, CER and a plugin's rate all reuse the same draws.

The group that a fairness audit is about is usually the small one, with few
and varied speakers. Percentile bootstrap intervals undercover there, and a
permutation test of the raw difference rejects too often when the groups'
spreads differ (benchmarks/coverage.py measures both), so the defaults are a
bootstrap-t interval (studentised by the linearised standard error) and a
permutation test of the studentised difference (Chung & Romano 2013).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import combinations, islice
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from asrfair.errors import AsrfairError

# Upper bound on the cells of one (draws x units) matrix held at once.
_CHUNK_CELLS = 1 << 22
# Count matrices are kept (and shared by every metric of a group) up to this many cells in all.
_CACHE_CELLS = 1 << 25
MAX_DRAWS = 1_000_000
# Below this size of the smaller side, relabelings are drawn as subsets (Floyd), not shuffles.
_SUBSET_SIDE = 64

AUTO_MIN_SPEAKERS = 5  # --interval auto: bootstrap-t from this many speakers a group, t below
INTERVALS = {
    "auto": (
        f"cluster-bootstrap-t interval where every group has at least {AUTO_MIN_SPEAKERS} "
        f"speakers, linearised t interval where one has fewer"
    ),
    "bootstrap-t": "cluster-bootstrap-t interval, studentised by the linearised standard error",
    "t": "linearised (delta-method) t interval on k-1 degrees of freedom (Welch for gaps)",
    "percentile": "cluster-bootstrap percentile interval",
    "bca": "cluster-bootstrap BCa interval (acceleration from a jackknife over speakers)",
}
P_ADJUST = {
    "holm": "Holm within each grouping, metric and kind of gap",
    "holm-all": "Holm over every gap p-value of the report (all groupings and metrics)",
    "none": "none: raw p-values",
}
GAP_MODES = ("auto", "pairs", "vs-best", "vs-rest", "none")  # plus ref:VALUE
PAIRS_UP_TO = 4  # --gaps auto enumerates pairs up to this many groups, else vs-rest


def _knob(default: object, option: str, help: str) -> Any:
    """A field with the option that sets it (``n_boot`` is ``--bootstrap``) and that option's
    help, so every command, the API and the config files name it the same way."""
    return field(default=default, metadata={"option": option, "help": help})


@dataclass(frozen=True)
class StatsConfig:
    """The knobs a reviewer asks about; all of them are printed with every report."""

    n_boot: int = _knob(
        10_000,
        "bootstrap",
        "Bootstrap draws per group, 199 or more at 95% confidence; 0 turns intervals off.",
    )
    n_perm: int = _knob(
        10_000,
        "permutations",
        "Relabelings for gap p-values (all of them when there are fewer); 0: no tests.",
    )
    seed: int = _knob(0, "stats_seed", "Seed of the bootstrap draws and the permutations.")
    confidence: float = _knob(0.95, "confidence", "Interval confidence level, 0.5 to 0.999.")
    min_speakers: int = _knob(10, "min_speakers", "Warn for groups with fewer speakers than this.")
    interval: str = _knob(
        "auto",
        "interval",
        "Interval: auto (bootstrap-t from 5 speakers, t below), bootstrap-t, t, percentile or bca.",
    )
    p_adjust: str = _knob(
        "holm",
        "p_adjust",
        "Gap p-value adjustment: holm (per grouping, metric and kind of gap), holm-all "
        "(one family) or none.",
    )
    gaps: str = _knob(
        "auto",
        "gaps",
        "Gaps to report: auto (pairs up to 4 groups, else vs-rest), pairs, vs-best, "
        "vs-rest, ref:VALUE or none; 3+ groups also get worst - best.",
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.confidence) and 0.5 <= self.confidence <= 0.999):
            raise AsrfairError(f"--confidence {self.confidence}: use a level from 0.5 to 0.999")
        least = self.min_draws
        if not (self.n_boot == 0 or least <= self.n_boot <= MAX_DRAWS):
            raise AsrfairError(
                f"--bootstrap {self.n_boot}: use {least:,} to {MAX_DRAWS:,} draws (at "
                f"{self.confidence} confidence, about 5 draws beyond each end of the interval), "
                "or 0 for no intervals"
            )
        if not 0 <= self.n_perm <= MAX_DRAWS:
            raise AsrfairError(f"--permutations {self.n_perm}: use 0 to {MAX_DRAWS:,}")
        if self.seed < 0:
            raise AsrfairError(f"--seed {self.seed}: use a seed of 0 or more")
        if self.min_speakers < 1:
            raise AsrfairError(f"--min-speakers {self.min_speakers}: use 1 or more")
        _check_choice("--interval", self.interval, INTERVALS)
        _check_choice("--p-adjust", self.p_adjust, P_ADJUST)
        if self.gaps not in GAP_MODES and not (self.gaps.startswith("ref:") and self.gaps[4:]):
            raise AsrfairError(
                f"--gaps {self.gaps!r}: use one of {', '.join(GAP_MODES)} or ref:VALUE"
            )

    @property
    def min_draws(self) -> int:
        """Fewest bootstrap draws B with (B + 1) * alpha / 2 >= 5: 5 beyond each end."""
        return math.ceil(5 / ((1.0 - self.confidence) / 2) - 1e-9) - 1

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def intervals_on(self) -> bool:
        return self.n_boot > 0

    @property
    def uses_draws(self) -> bool:
        """The t interval needs no bootstrap draws; the others do."""
        return self.intervals_on and self.interval != "t"

    def method(self, unit: str) -> dict[str, object]:
        interval = self.interval if self.intervals_on else "none"
        return {
            "rate": "corpus-level: sum of errors / sum of reference tokens",
            "resampling_unit": unit,
            "interval": interval,
            "interval_method": INTERVALS.get(interval, "no intervals (--bootstrap 0)"),
            "bootstrap": f"cluster over {unit}s, per group" if self.uses_draws else "none",
            "draws": self.n_boot if self.uses_draws else 0,
            "seed": self.seed,
            "confidence": self.confidence,
            "gap_test": (
                f"two-sided; p is the larger of (1) a permutation test over {unit}s of the "
                "studentised difference of rates (difference / cluster-robust SE; Chung & "
                "Romano 2013), exact when the relabelings number at most `permutations`, and "
                "(2) the test that inverts the difference's own interval"
                + ("" if self.intervals_on else " (none here: --bootstrap 0, so (1) alone)")
            ),
            "gap_null": "the two groups' corpus rates are equal",
            "permutations": self.n_perm,
            "gaps": self.gaps,
            "p_adjust": self.p_adjust,
            "p_adjust_family": P_ADJUST[self.p_adjust],
            "largest_gap": (
                "worst minus best group; interval from Sidak-simultaneous linearised t "
                "intervals of every group, so the choice of both groups is accounted for"
            ),
            "min_speakers": self.min_speakers,
        }


STATS_OPTIONS = {f.metadata["option"]: f for f in fields(StatsConfig)}


def _of_type(name: str, value: Any, kind: type) -> Any:
    """An option's value as its field's type: numpy integers pass as int and integers as
    float, but never a bool, a fraction of a draw or a number written as text."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, kind | np.integer | int | float | str):
        raise AsrfairError(
            f"{flag} {value!r}: give {'a whole number' if kind is int else kind.__name__}"
        )
    if kind is int and isinstance(value, int | np.integer):
        return int(value)
    if kind is float and isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, kind):
        return value
    wanted = "a whole number" if kind is int else kind.__name__
    raise AsrfairError(f"{flag} {value!r}: give {wanted}")


def stats_config(options: Mapping[str, Any], *, where: str = "") -> StatsConfig:
    """The one place option names become a StatsConfig (``bootstrap`` is ``n_boot``...):
    the score, compare and audit commands, the API and the study and config files all call
    it, so an option's name and default are stated once. A bad value names ``where``."""
    unknown = sorted(set(options) - set(STATS_OPTIONS))
    if unknown:
        raise AsrfairError(
            f"{where or 'statistics'}: unknown option {unknown[0]!r}; known: "
            f"{', '.join(STATS_OPTIONS)}"
        )
    try:
        values = {
            STATS_OPTIONS[name].name: _of_type(name, value, type(STATS_OPTIONS[name].default))
            for name, value in options.items()
        }
        return StatsConfig(**values)
    except AsrfairError as exc:
        raise AsrfairError(f"{where}: {exc}" if where else str(exc)) from None


def _check_choice(option: str, value: str, known: dict[str, str]) -> None:
    if value not in known:
        raise AsrfairError(f"{option} {value!r}: use one of {', '.join(known)}")


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


def moments(sums: np.ndarray) -> np.ndarray:
    """Per-unit [e, n, e^2, e*n, n^2] from per-unit [errors, tokens] (more pairs: more blocks)."""
    sums = np.asarray(sums, dtype=np.float64)
    blocks = []
    for j in range(0, sums.shape[1], 2):
        e, n = sums[:, j], sums[:, j + 1]
        blocks.append(np.column_stack([e, n, e * e, e * n, n * n]))
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(sums), 0))


def rate_var(totals: np.ndarray, k: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corpus rate and its linearised variance from moment totals over ``k`` units.

    Var(r) ~ k/(k-1) * sum_i (e_i - r n_i)^2 / (sum_i n_i)^2: the cluster-robust (CR1)
    variance of a ratio estimator. Where it is exactly 0 (one speaker, or speakers whose rates
    are equal, common in bootstrap draws from a few speakers with few errors) it is replaced
    by p(1-p)/N with p = (e + 1/2)/(N + 1), the variance of the same N tokens erring
    independently (never 0), so that a studentised statistic stays finite. Flooring every
    variance instead was measured to spoil bootstrap-t coverage (benchmarks/coverage.py).
    NaN rate where there are no tokens.
    """
    t = np.asarray(totals, dtype=np.float64)
    e, n, ee, en, nn = (t[..., j] for j in range(5))
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(n > 0, e / np.where(n > 0, n, 1.0), np.nan)
        # Summing moments cancels digits: a spread within rounding of 0 is 0 (equal rates).
        spread = np.where(_no_spread(t), 0.0, ee - 2 * r * en + r * r * nn)
        factor = np.where(k > 1, k / np.maximum(k - 1, 1), 1.0)
        p = np.clip((e + 0.5) / (n + 1), 0.0, 1.0)  # never 0, even without errors
        v = np.where(spread > 0, factor * spread / (n * n), p * (1 - p) / n)
    return r, v


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


class SharedDraws:
    """One set of bootstrap draws per key (grouping, group), shared by every statistic on it.

    The count matrix of a key is drawn once and kept while the cache holds fewer than
    ``_CACHE_CELLS`` cells; past that it is drawn again from the same seed, chunk by chunk,
    so memory stays bounded and the numbers are the same either way.
    """

    def __init__(self, cfg: StatsConfig) -> None:
        self.cfg = cfg
        self._counts: dict[tuple[str, ...], np.ndarray] = {}
        self._cells = 0

    def totals(self, values: np.ndarray, *key: str) -> np.ndarray:
        k, n = len(values), self.cfg.n_boot
        counts = self._counts.get(key)
        if counts is None and k and self._cells + k * n <= _CACHE_CELLS:
            rng = rng_for(self.cfg.seed, "boot", *key)
            counts = np.concatenate(list(_count_chunks(k, n, rng)))
            self._counts[key] = counts
            self._cells += counts.size
        if counts is not None:
            totals: np.ndarray = counts @ values
            return totals
        return resample_totals(values, n, rng_for(self.cfg.seed, "boot", *key))


# -- intervals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval; ``ci[1]`` None is an open (unbounded) upper end.

    ``ci`` is None when intervals are off or none can be given; ``reason`` then says why
    (or qualifies the interval that was given). ``undefined_share`` is the share of bootstrap
    draws in which the estimate was undefined (counted as unbounded, never dropped).
    ``p_zero`` is the two-sided p-value of "the estimate is 0 (log scale: the ratio is 1)"
    that inverts this very interval: it is at most 1 - confidence exactly when the interval
    excludes 0.
    """

    value: float | None
    ci: tuple[float | None, float | None] | None = None
    reason: str | None = None
    undefined_share: float | None = None
    p_zero: float | None = None


def _estimand(
    kind: str, totals: Sequence[np.ndarray], ks: Sequence[float]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The estimate and its variance components (one per independent group)."""
    r_a, v_a = rate_var(totals[0], ks[0])
    if kind == "rate":
        return r_a, [v_a]
    r_b, v_b = rate_var(totals[1], ks[1])
    if kind == "diff":
        return r_a - r_b, [v_a, v_b]
    with np.errstate(divide="ignore", invalid="ignore"):  # log ratio, delta method
        return np.log(r_a) - np.log(r_b), [v_a / (r_a * r_a), v_b / (r_b * r_b)]


def _welch_df(comps: Sequence[float], ks: Sequence[int]) -> float:
    total = sum(comps)
    denom = sum(c * c / (k - 1) for c, k in zip(comps, ks, strict=True) if k > 1)
    return total * total / denom if denom > 0 else float(min(ks) - 1)


def _quantiles(draws: np.ndarray, levels: Sequence[float]) -> list[float]:
    """Order statistics (no interpolation); undefined draws count as +infinity."""
    x = np.where(np.isnan(draws), np.inf, draws)
    return [float(q) for q in np.quantile(x, list(levels), method="inverted_cdf")]


def _undefined(draws: np.ndarray, kind: str) -> np.ndarray:
    undefined: np.ndarray = np.isnan(draws)
    if kind == "log-ratio":
        undefined |= draws == np.inf
    return undefined


def _bca_params(
    theta: float, draws: np.ndarray, samples: Sequence[np.ndarray], kind: str
) -> tuple[float, float]:
    """Efron's bias correction z0 and acceleration (from a jackknife over units)."""
    b = len(draws)
    share = (np.sum(draws < theta) + 0.5 * np.sum(draws == theta)) / b
    z0 = float(special.ndtri(np.clip(share, 0.5 / b, 1 - 0.5 / b)))
    totals = [s.sum(axis=0) for s in samples]
    ks = [len(s) for s in samples]
    cubes = squares = 0.0
    for g, sample in enumerate(samples):
        left_out = [np.broadcast_to(t, sample.shape).copy() for t in totals]
        left_out[g] = totals[g] - sample
        jack, _ = _estimand(kind, left_out, [k - (i == g) for i, k in enumerate(ks)])
        if not np.all(np.isfinite(jack)):
            continue
        d = jack.mean() - jack
        cubes += float(np.sum(d**3))
        squares += float(np.sum(d**2))
    return z0, cubes / (6 * squares**1.5) if squares > 0 else 0.0


def _tail_p(below: int, above: int, b: int) -> float:
    """Two-sided p-value from the draws at or below, and at or above, the null value."""
    return min(1.0, 2 * min((below + 1) / (b + 1), (above + 1) / (b + 1)))


@dataclass(frozen=True)
class _OnScale:
    low: float
    high: float
    undefined: float | None
    p_zero: float | None


def _interval_on_scale(
    kind: str,
    samples: Sequence[np.ndarray],
    draws: Sequence[np.ndarray] | None,
    method: str,
    level: float,
) -> _OnScale:
    """The interval on the estimand's own scale, its undefined draws, and its test of 0."""
    totals = [s.sum(axis=0) for s in samples]
    ks = [len(s) for s in samples]
    theta_arr, comps_arr = _estimand(kind, totals, ks)
    theta = float(theta_arr)
    comps = [float(c) for c in comps_arr]
    alpha = 1.0 - level
    se = math.sqrt(sum(comps))
    t_obs = theta / se if se > 0 else (0.0 if theta == 0 else math.copysign(math.inf, theta))
    if method == "t":
        df = _welch_df(comps, ks)
        q = float(sps.t.ppf(1 - alpha / 2, df))
        p = float(2 * sps.t.sf(abs(t_obs), df))
        return _OnScale(theta - q * se, theta + q * se, None, p)
    assert draws is not None
    star, star_comps = _estimand(kind, list(draws), ks)
    undefined = float(np.mean(_undefined(star, kind)))
    star = np.where(np.isnan(star), np.inf, star)
    b = len(star)
    if method == "percentile":
        lo, hi = _quantiles(star, [alpha / 2, 1 - alpha / 2])
        return _OnScale(
            lo, hi, undefined, _tail_p(int(np.sum(star <= 0)), int(np.sum(star >= 0)), b)
        )
    if method == "bca":
        z0, accel = _bca_params(theta, star, samples, kind)
        z = special.ndtri(np.array([alpha / 2, 1 - alpha / 2]))
        levels = special.ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
        lo, hi = _quantiles(star, [float(levels[0]), float(levels[1])])
        # The nominal level whose BCa end falls on 0 (Efron's formula solved backwards).
        share = np.clip((np.sum(star < 0) + 0.5 * np.sum(star == 0)) / b, 0.5 / b, 1 - 0.5 / b)
        u = float(special.ndtri(share)) - z0
        one_side = float(special.ndtr(u / (1 + accel * u) - z0))
        return _OnScale(lo, hi, undefined, min(1.0, 2 * min(one_side, 1 - one_side)))
    # A draw whose speakers all have equal rates has no spread to studentise by: its own
    # (token-level) SE is far below the sample's and would make its t* extreme, so such a
    # draw is studentised by the sample's SE instead.
    flat = np.logical_or.reduce([_no_spread(d) for d in draws])
    se_star = np.where(flat, se, np.sqrt(np.sum(star_comps, axis=0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = (star - theta) / se_star
    t_star = np.where((se_star == 0) & (star == theta), 0.0, t_star)
    t_star = np.where(np.isnan(t_star), np.inf, t_star)
    q_lo, q_hi = _quantiles(t_star, [alpha / 2, 1 - alpha / 2])
    p = _tail_p(int(np.sum(t_star <= t_obs)), int(np.sum(t_star >= t_obs)), b)
    high = theta - q_lo * se
    if kind == "log-ratio" and undefined > alpha / 2:
        high = math.inf  # as with the other methods: enough unbounded draws open the top
    return _OnScale(theta - q_hi * se, high, undefined, p)


def estimate(
    kind: str,
    samples: Sequence[np.ndarray],
    cfg: StatsConfig,
    draws: Sequence[np.ndarray] | None = None,
    *,
    level: float | None = None,
    method: str | None = None,
) -> Estimate:
    """A rate (``kind`` "rate", one sample), a difference ("diff") or a ratio ("log-ratio").

    ``samples`` hold per-unit moments (``moments``); ``draws`` the matching bootstrap moment
    totals, needed by every method but "t". The ratio is estimated on the log scale and
    transformed back.
    """
    method = method or cfg.interval
    level = level or cfg.confidence
    totals = [s.sum(axis=0) for s in samples]
    theta_arr, _ = _estimand(kind, totals, [len(s) for s in samples])
    theta = float(theta_arr)
    if math.isnan(theta) or (kind == "log-ratio" and theta == math.inf):
        return Estimate(None, None, "undefined: a rate has no reference tokens or is 0")
    value = math.exp(theta) if kind == "log-ratio" else theta
    if not cfg.intervals_on:
        return Estimate(value)
    k_min = min(len(s) for s in samples)
    if k_min < 2:
        return Estimate(value, None, f"{k_min} speaker(s): no interval with fewer than 2")
    if kind == "rate" and totals[0][0] == 0:
        words = float(totals[0][1])
        upper = 1.0 - ((1.0 - level) / 2) ** (1.0 / words)
        note = (
            f"no errors: interval is the Clopper-Pearson bound over {words:,.0f} tokens "
            "(no speaker variation to estimate)"
        )
        return Estimate(0.0, (0.0, upper), note)
    if kind == "log-ratio" and theta == -math.inf:
        return Estimate(0.0, None, "rate of the first group is 0: no ratio interval")
    reason = None
    if method in ("auto", "bootstrap-t") and any(_equal_rates(s) for s in samples):
        # Resampling such a group's speakers changes nothing: bootstrap-t would miss its
        # variance entirely, the linearised interval keeps its token-level variance.
        method = "t"
        reason = "speakers with equal rates: linearised t interval on the token variance"
    if method == "auto":
        method = "bootstrap-t" if k_min >= AUTO_MIN_SPEAKERS else "t"
        if method == "t":
            reason = f"linearised t interval (bootstrap-t needs {AUTO_MIN_SPEAKERS}+ speakers)"
    scale = _interval_on_scale(kind, samples, draws, method, level)
    lo, hi, undefined = scale.low, scale.high, scale.undefined
    if undefined:
        share = f"{100 * undefined:.2g}% of bootstrap draws undefined (counted as unbounded)"
        reason = _join(reason, share)
    if kind == "log-ratio":
        lo, hi = math.exp(lo), math.exp(hi)
    elif kind == "rate":
        lo = max(lo, 0.0)
    low = None if lo == -math.inf else lo
    high = None if hi == math.inf else hi
    if low is None or high is None:
        reason = _join(reason, "unbounded: too few distinct speakers to bound it")
    elif high - low <= 0:
        reason = _join(reason, "no variation between speakers: a zero-width interval")
    return Estimate(value, (low, high), reason, undefined, scale.p_zero)


def _no_spread(totals: np.ndarray) -> np.ndarray:
    """Where moment totals come from units that all have the same rate (or no tokens)."""
    t = np.asarray(totals, dtype=np.float64)
    e, n, ee, en, nn = (t[..., j] for j in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(n > 0, e / np.where(n > 0, n, 1.0), 0.0)
        flat: np.ndarray = ee - 2 * r * en + r * r * nn <= 1e-10 * np.maximum(ee, 1.0)
    return flat


def _equal_rates(sample: np.ndarray) -> bool:
    """Whether every unit of a per-unit moment matrix has the same rate (zero spread)."""
    return bool(_no_spread(sample.sum(axis=0)))


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def simultaneous_range(
    samples: dict[str, np.ndarray], cfg: StatsConfig
) -> tuple[str, str, float, tuple[float, float] | None] | None:
    """Worst minus best group, with an interval that accounts for choosing both.

    Every group gets a linearised t interval at the Sidak level confidence^(1/G); with
    probability >= confidence all G intervals hold at once, and then the true range lies
    in [max(lo) - min(hi), max(hi) - min(lo)] (the lower end floored at 0).
    """
    rates = {g: float(rate_var(s.sum(axis=0), len(s))[0]) for g, s in samples.items()}
    rates = {g: r for g, r in rates.items() if math.isfinite(r)}
    if len(rates) < 2:
        return None
    worst = max(rates, key=lambda g: rates[g])
    best = min(rates, key=lambda g: rates[g])
    diff = rates[worst] - rates[best]
    if not cfg.intervals_on:
        return worst, best, diff, None
    level = cfg.confidence ** (1.0 / len(rates))
    bounds = [estimate("rate", [samples[g]], cfg, level=level, method="t").ci for g in rates]
    lows = [b[0] for b in bounds if b is not None and b[0] is not None]
    highs = [b[1] for b in bounds if b is not None and b[1] is not None]
    if len(lows) < len(bounds) or len(highs) < len(bounds):
        return worst, best, diff, None  # a group without a bounded interval
    return worst, best, diff, (max(0.0, max(lows) - min(highs)), max(highs) - min(lows))


# -- the gap test -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PermutationTest:
    """Two-sided p-values of the studentised gap, one per metric block."""

    p_values: list[float | None]
    p_min: list[float | None]  # the smallest p-value these group sizes can give
    exact: bool
    relabelings: int  # enumerated (exact) or drawn


def studentised(totals_a: np.ndarray, k_a: int, totals_b: np.ndarray, k_b: int) -> np.ndarray:
    """(rate_a - rate_b) / sqrt(Var a + Var b), per metric block; +-inf when the SE is 0."""
    blocks = totals_a.shape[-1] // 5
    out = []
    for j in range(blocks):
        cols = slice(5 * j, 5 * j + 5)
        r_a, v_a = rate_var(totals_a[..., cols], k_a)
        r_b, v_b = rate_var(totals_b[..., cols], k_b)
        diff, se = r_a - r_b, np.sqrt(v_a + v_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * np.inf)
        out.append(np.where(diff == 0, 0.0, t))
    return np.stack(out, axis=-1)


def _random_subsets(n: int, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` uniform ``size``-subsets of range(n), by Floyd's algorithm, vectorised."""
    out = np.empty((count, size), dtype=np.int64)
    for col, j in enumerate(range(n - size, n)):
        pick = rng.integers(0, j + 1, size=count)
        if col:
            pick = np.where((out[:, :col] == pick[:, None]).any(axis=1), j, pick)
        out[:, col] = pick
    return out


def _relabelings(
    k_a: int, k_b: int, n_perm: int, rng: np.random.Generator
) -> tuple[bool, int, Iterator[tuple[np.ndarray | None, np.ndarray | None]]]:
    """Chunks of relabelings as (indices of group a, or None) and (0/1 masks of a, or None).

    All C(k_a + k_b, k_a) relabelings when there are at most ``n_perm``, else ``n_perm`` drawn
    at random. Chunks are bounded, so memory is too, whatever ``n_perm``.
    """
    n = k_a + k_b
    small = min(k_a, k_b)
    total = math.comb(n, k_a)
    chunk = max(1, _CHUNK_CELLS // (8 * max(n, 1)))
    if total <= n_perm:

        def listed() -> Iterator[tuple[np.ndarray | None, np.ndarray | None]]:
            every = combinations(range(n), k_a)
            while block := list(islice(every, chunk)):
                yield np.array(block, dtype=np.int64).reshape(len(block), k_a), None

        return True, total, listed()

    def drawn() -> Iterator[tuple[np.ndarray | None, np.ndarray | None]]:
        for start in range(0, n_perm, chunk):
            b = min(chunk, n_perm - start)
            if small <= _SUBSET_SIDE:
                picks = _random_subsets(n, small, b, rng)
                if small == k_a:
                    yield picks, None
                else:  # the picks are group b: group a is the rest
                    mask = np.ones((b, n))
                    np.put_along_axis(mask, picks, 0.0, axis=1)
                    yield None, mask
            else:
                labels = np.zeros(n)
                labels[:k_a] = 1.0
                yield None, rng.permuted(np.tile(labels, (b, 1)), axis=1)

    return False, n_perm, drawn()


def _less_a_hair(x: np.ndarray) -> np.ndarray:
    """``x`` less a relative tolerance, so that ties with it count as at least as extreme."""
    with np.errstate(invalid="ignore"):
        out: np.ndarray = np.where(np.isfinite(x), x - 1e-9 * np.maximum(1, np.abs(x)), x)
    return out


def permutation_test(
    moments_a: np.ndarray, moments_b: np.ndarray, n_perm: int, rng: np.random.Generator
) -> PermutationTest:
    """Permutation p-values of the studentised gap (Chung & Romano 2013), per metric block.

    Permuting the raw difference tests whether the groups' speakers are exchangeable, and
    rejects too often when one group's speakers vary more; the studentised statistic is
    asymptotically valid for equal rates alone. Exact when the relabelings are few.
    """
    blocks = moments_a.shape[1] // 5
    k_a, k_b = len(moments_a), len(moments_b)
    observed = studentised(moments_a.sum(axis=0), k_a, moments_b.sum(axis=0), k_b)
    if n_perm <= 0 or k_a == 0 or k_b == 0:
        return PermutationTest([None] * blocks, [None] * blocks, False, 0)
    pooled = np.concatenate([moments_a, moments_b])
    total = pooled.sum(axis=0)
    exact, count, chunks = _relabelings(k_a, k_b, n_perm, rng)
    threshold = _less_a_hair(np.abs(observed))
    extreme = np.zeros(blocks)
    listed = []  # every |T| when the relabelings are enumerated: the p-value floor needs them
    for index, mask in chunks:
        in_a = pooled[index].sum(axis=1) if index is not None else mask @ pooled
        stat = np.abs(studentised(in_a, k_a, total - in_a, k_b))
        extreme += np.sum(stat >= threshold, axis=0)
        if exact:
            listed.append(stat)
    at_top = np.zeros(blocks)
    if exact:
        every = np.concatenate(listed)
        at_top = np.sum(every >= _less_a_hair(np.nanmax(every, axis=0)), axis=0)
    p_values: list[float | None] = []
    p_min: list[float | None] = []
    for j in range(blocks):
        if np.isnan(observed[j]):
            p_values.append(None)
            p_min.append(None)
            continue
        if exact:
            p_values.append(float(extreme[j] / count))
            p_min.append(float(at_top[j] / count))
        else:
            p_values.append(float((extreme[j] + 1) / (count + 1)))
            p_min.append(1.0 / (count + 1))
    return PermutationTest(p_values, p_min, exact, count)


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


# -- two systems on the same test set -----------------------------------------------------------


def ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    """Elementwise rate; NaN (undefined) where the denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class Paired:
    """System B against system A on the same units: rate(B) - rate(A)."""

    rate_a: float | None
    rate_b: float | None
    diff: float | None
    diff_ci: tuple[float, float] | None
    p_b_better: float | None  # share of draws where B's rate is below A's
    p_a_better: float | None = None  # share of draws where A's rate is below B's
    p_tie: float | None = None  # share of draws where the two rates are equal
    notes: list[str] = field(default_factory=list)


def paired(sums: np.ndarray, cfg: StatsConfig, *key: str) -> Paired:
    """Paired bootstrap (Bisani & Ney 2004) over per-unit [errors_a, errors_b, words] sums.

    Both systems see the very same speaker draws, so the speaker-to-speaker variation
    that they share cancels from the difference. Ties are reported on their own: two
    identical systems give P(tie) = 1, not "B is never better".
    """
    rate_a = ratio(sums[:, 0].sum(), sums[:, 2].sum())
    rate_b = ratio(sums[:, 1].sum(), sums[:, 2].sum())
    if not np.isfinite(rate_a):
        return Paired(None, None, None, None, None, notes=["no reference tokens: rates undefined"])
    diff = float(rate_b - rate_a)
    if cfg.n_boot <= 0:
        return Paired(float(rate_a), float(rate_b), diff, None, None)
    if len(sums) < 2:
        note = f"{len(sums)} speaker(s): no interval with fewer than 2"
        return Paired(float(rate_a), float(rate_b), diff, None, None, notes=[note])
    totals = resample_totals(sums, cfg.n_boot, rng_for(cfg.seed, "paired", *key))
    deltas = ratio(totals[:, 1] - totals[:, 0], totals[:, 2])
    defined = deltas[np.isfinite(deltas)]
    notes = []
    if defined.size < deltas.size:
        share = 1 - defined.size / deltas.size
        notes.append(f"{100 * share:.2g}% of draws had no reference tokens and were undefined")
    if not defined.size:
        return Paired(float(rate_a), float(rate_b), diff, None, None, None, None, notes)
    tie = np.abs(defined) <= 1e-12
    alpha = cfg.alpha
    lo, hi = _quantiles(defined, [alpha / 2, 1 - alpha / 2])
    return Paired(
        float(rate_a),
        float(rate_b),
        diff,
        (lo, hi),
        float(np.mean((defined < 0) & ~tie)),
        float(np.mean((defined > 0) & ~tie)),
        float(np.mean(tie)),
        notes,
    )
