"""Built-in metrics: WER and CER overall and per group, and the gaps between groups."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from asrfair import hookimpl
from asrfair.errors import AsrfairError
from asrfair.metrics import Metric, MetricContext, plain_ci
from asrfair.registry import Register
from asrfair.stats import (
    PAIRS_UP_TO,
    estimate,
    holm,
    moments,
    permutation_test,
    rng_for,
    simultaneous_range,
)


def _word_rate(ctx: MetricContext, grouping: str | None) -> None:
    frame = ctx.table.frame
    ctx.record_rate(
        "wer",
        ctx.table.word_errors,
        frame["w_n"].to_numpy(),
        grouping=grouping,
        counts={
            "errors": ctx.table.word_errors,
            "n_ref_words": frame["w_n"].to_numpy(),
            "substitutions": frame["w_sub"].to_numpy(),
            "deletions": frame["w_del"].to_numpy(),
            "insertions": frame["w_ins"].to_numpy(),
        },
    )


def _char_rate(ctx: MetricContext, grouping: str | None) -> None:
    chars = ctx.table.frame["c_n"].to_numpy()
    ctx.record_rate(
        "cer",
        ctx.table.char_errors,
        chars,
        grouping=grouping,
        counts={"char_errors": ctx.table.char_errors, "n_ref_chars": chars},
        unit_name="reference characters",
    )


def wer(ctx: MetricContext) -> None:
    _word_rate(ctx, None)


def cer(ctx: MetricContext) -> None:
    _char_rate(ctx, None)


def group_wer(ctx: MetricContext) -> None:
    for grouping in ctx.table.groupings:
        _word_rate(ctx, grouping)


def group_cer(ctx: MetricContext) -> None:
    for grouping in ctx.table.groupings:
        _char_rate(ctx, grouping)


@dataclass(frozen=True)
class _Side:
    """One side of a gap: its label, rows, speaker moments and bootstrap moment totals.

    ``sample`` and ``draws`` hold WER's five moment columns, then CER's; ``draws`` is None
    when the interval method needs no draws.
    """

    label: str
    mask: np.ndarray
    sample: np.ndarray
    draws: np.ndarray | None
    warnings: list[str]


def _counts(ctx: MetricContext) -> np.ndarray:
    """Per-utterance [word errors, words, char errors, chars]: every side's moments sum these."""
    table = ctx.table
    frame = table.frame
    return np.column_stack(
        [table.word_errors, frame["w_n"].to_numpy(), table.char_errors, frame["c_n"].to_numpy()]
    )


def _group_side(ctx: MetricContext, counts: np.ndarray, grouping: str, name: str) -> _Side:
    """A group, on the very draws that gave its own WER and CER intervals."""
    mask = ctx.mask(grouping, name)
    sample = moments(ctx.sums_in(counts, mask))
    draws = ctx.draws.totals(sample, grouping, name) if ctx.cfg.uses_draws else None
    return _Side(name, mask, sample, draws, list(ctx.groups[grouping][name]["warnings"]))


def _rest_side(ctx: MetricContext, counts: np.ndarray, side: _Side, everyone: _Side) -> _Side:
    """Every other speaker of the grouping. Its draws are the other groups' draws added up (a
    bootstrap stratified by group), so the rest costs no draws of its own."""
    mask = everyone.mask & ~side.mask
    sample = moments(ctx.sums_in(counts, mask))
    draws = None if everyone.draws is None or side.draws is None else everyone.draws - side.draws
    label = f"rest of {side.label}"
    warnings = []
    if ctx.table.has_speakers and len(sample) < ctx.cfg.min_speakers:
        warnings.append(f"{label}: only {len(sample)} speaker(s) (< {ctx.cfg.min_speakers})")
    return _Side(label, mask, sample, draws, warnings)


def _everyone(grouping: str, sides: dict[str, _Side]) -> _Side:
    """All the compared groups together (its draws: the sum of theirs)."""
    mask = np.logical_or.reduce([s.mask for s in sides.values()])
    draws = None
    for side in sides.values():
        if side.draws is not None:
            draws = side.draws.copy() if draws is None else draws + side.draws
    return _Side(grouping, mask, np.zeros((0, 10)), draws, [])


def _block(values: np.ndarray, metric: str) -> np.ndarray:
    return values[..., :5] if metric == "wer" else values[..., 5:]


def _wer(side: _Side) -> float:
    totals = side.sample[:, :2].sum(axis=0)
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def _comparisons(
    ctx: MetricContext, grouping: str, sides: dict[str, _Side], counts: np.ndarray
) -> list[tuple[str, _Side, _Side]]:
    """(kind, a, b) for the --gaps mode; pairs are ordered worse-served (by WER) first."""
    names = list(sides)
    mode = ctx.cfg.gaps
    if mode == "auto":
        mode = "pairs" if len(names) <= PAIRS_UP_TO else "vs-rest"
    if mode == "none" or len(names) < 2:
        return []
    if mode == "pairs":
        out = []
        for first, second in combinations(names, 2):
            a, b = sides[first], sides[second]
            out.append(("pair", *((b, a) if _wer(b) > _wer(a) else (a, b))))
        return out
    if mode == "vs-rest":
        everyone = _everyone(grouping, sides)
        return [("vs-rest", s, _rest_side(ctx, counts, s, everyone)) for s in sides.values()]
    if mode == "vs-best":
        reference = min(names, key=lambda n: _wer(sides[n]))
    else:  # ref:VALUE
        reference = mode[4:]
        if reference not in sides:
            known = ", ".join(names)
            raise AsrfairError(
                f"--gaps {mode}: {grouping} has no group {reference!r} with a defined WER; "
                f"its groups are: {known}"
            )
    kind = "vs-best" if mode == "vs-best" else "vs-ref"
    return [(kind, sides[n], sides[reference]) for n in names if n != reference]


def _gap_row(
    ctx: MetricContext, kind: str, a: _Side, b: _Side, metric: str, p_perm: float | None
) -> dict[str, Any]:
    """One gap. Its p-value is the larger of the permutation p and the p-value that inverts
    the difference's own interval: significant only when both say so, so a significant gap's
    interval always excludes 0, and the test keeps its level where either alone does not."""
    samples = [_block(a.sample, metric), _block(b.sample, metric)]
    draws = None
    if a.draws is not None and b.draws is not None:
        draws = [_block(a.draws, metric), _block(b.draws, metric)]
    diff = estimate("diff", samples, ctx.cfg, draws)
    rel = estimate("log-ratio", samples, ctx.cfg, draws)
    p_interval = diff.p_zero if ctx.cfg.intervals_on else None
    p = p_perm if p_perm is None or p_interval is None else max(p_perm, p_interval)
    warnings = list(dict.fromkeys(a.warnings + b.warnings))
    for side, block in zip((a, b), samples, strict=True):
        if block[:, 0].sum() == 0 and ctx.cfg.intervals_on:
            warnings.append(f"{side.label} has no errors: the interval takes its rate as known")
    if ctx.cfg.intervals_on:
        warnings += [
            f"{what}: {e.reason}" for what, e in (("diff", diff), ("ratio", rel)) if e.reason
        ]
    return {
        "a": a.label,
        "b": b.label,
        "kind": kind,
        "metric": metric,
        "n_speakers_a": len(a.sample),
        "n_speakers_b": len(b.sample),
        "diff": diff.value,
        "diff_ci": plain_ci(diff.ci),
        "ratio": rel.value,
        "ratio_ci": plain_ci(rel.ci),
        "ratio_undefined_share": rel.undefined_share,
        "p_value": p,
        "p_permutation": p_perm,
        "p_interval": p_interval,
        "warnings": warnings,
    }


def _largest_rows(ctx: MetricContext, sides: dict[str, _Side]) -> list[dict[str, Any]]:
    rows = []
    for metric in ("wer", "cer"):
        found = simultaneous_range({n: _block(s.sample, metric) for n, s in sides.items()}, ctx.cfg)
        if found is None:
            continue
        worst, best, diff, ci = found
        a, b = sides[worst], sides[best]
        samples = [_block(a.sample, metric), _block(b.sample, metric)]
        rel = estimate("log-ratio", samples, ctx.cfg, method="t")
        note = (
            f"interval simultaneous over {len(sides)} groups (Sidak), as worst and best were "
            "both picked from the data"
        )
        missing = "no simultaneous interval: a group has fewer than 2 speakers or no bound"
        rows.append(
            {
                "a": worst,
                "b": best,
                "kind": "largest",
                "metric": metric,
                "n_speakers_a": len(a.sample),
                "n_speakers_b": len(b.sample),
                "diff": diff,
                "diff_ci": plain_ci(ci),
                "ratio": rel.value,
                "ratio_ci": None,
                "ratio_undefined_share": None,
                "p_value": None,
                "p_permutation": None,
                "p_interval": None,
                "p_exact": None,
                "p_min": None,
                "warnings": [note if ci is not None else missing] * ctx.cfg.intervals_on
                + list(dict.fromkeys(a.warnings + b.warnings)),
            }
        )
    return rows


def _grouping_gaps(ctx: MetricContext, grouping: str) -> list[dict[str, Any]]:
    counts = _counts(ctx)
    sides = {n: _group_side(ctx, counts, grouping, n) for n in ctx.group_names(grouping)}
    notes = ctx.gap_notes.setdefault(grouping, [])
    undefined = [n for n, s in sides.items() if not np.isfinite(_wer(s))]
    if undefined:
        notes.append(f"no reference words, so in no gap: {', '.join(undefined)}")
    sides = {n: s for n, s in sides.items() if n not in undefined}
    rows: list[dict[str, Any]] = []
    p_floor: list[float] = []
    for kind, a, b in _comparisons(ctx, grouping, sides, counts):
        test = permutation_test(
            a.sample,
            b.sample,
            ctx.cfg.n_perm,
            rng_for(ctx.cfg.seed, "perm", grouping, a.label, b.label),
        )
        for i, metric in enumerate(("wer", "cer")):
            row = _gap_row(ctx, kind, a, b, metric, test.p_values[i])
            row["p_exact"] = test.exact
            row["p_min"] = floor = test.p_min[i]
            rows.append(row)
            if floor is not None:
                p_floor.append(floor)
    if len(sides) >= 3 and ctx.cfg.gaps != "none":
        rows += _largest_rows(ctx, sides)
    if p_floor and min(p_floor) > ctx.cfg.alpha:
        notes.append(
            f"no gap p-value by {grouping} can fall below {min(p_floor):.3g} with these "
            "speakers (too few of them, or no differences between them): no gap can be "
            f"significant at the {ctx.cfg.alpha:.3g} level"
        )
    if not notes:
        del ctx.gap_notes[grouping]
    return rows


def _adjust(ctx: MetricContext) -> None:
    """Fill ``p_adjusted`` (and ``p_holm``) over the family that --p-adjust names."""
    rows = [row for grouping_rows in ctx.gaps.values() for row in grouping_rows]
    for row in rows:
        row["p_adjusted"] = row["p_value"]
        row["p_holm"] = None
    if ctx.cfg.p_adjust == "none":
        return
    families: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for grouping, grouping_rows in ctx.gaps.items():
        for row in grouping_rows:
            key = () if ctx.cfg.p_adjust == "holm-all" else (grouping, row["metric"], row["kind"])
            families.setdefault(key, []).append(row)
    for family in families.values():
        for row, adjusted in zip(family, holm([r["p_value"] for r in family]), strict=True):
            row["p_adjusted"] = row["p_holm"] = adjusted


def gaps(ctx: MetricContext) -> None:
    """WER/CER gaps within each grouping (--gaps), with studentised permutation p-values.

    Groups whose rate is undefined (no reference tokens) take part in no gap.
    """
    for grouping in ctx.table.groupings:
        ctx.gaps[grouping] = _grouping_gaps(ctx, grouping)
    _adjust(ctx)


@hookimpl
def register_metrics(register: Register[Metric]) -> None:
    register("wer", wer, help="corpus word error rate with a speaker-bootstrap interval")
    register("cer", cer, help="corpus character error rate with a speaker-bootstrap interval")
    register("group_wer", group_wer, help="WER per group of each --groups column")
    register("group_cer", group_cer, help="CER per group of each --groups column")
    register(
        "gap",
        gaps,
        help="WER/CER gaps (--gaps): difference, ratio, studentised permutation p, worst - best",
    )
