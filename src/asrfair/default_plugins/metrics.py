"""Built-in metrics: WER and CER overall and per group, and the gaps between groups."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from asrfair import hookimpl
from asrfair.metrics import MetricContext
from asrfair.registry import Register
from asrfair.stats import gap, holm, permutation_pvalue, rng_for


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
    for grouping in ctx.table.group_columns:
        _word_rate(ctx, grouping)


def group_cer(ctx: MetricContext) -> None:
    for grouping in ctx.table.group_columns:
        _char_rate(ctx, grouping)


def _point_wer(ctx: MetricContext, grouping: str) -> dict[str, float]:
    errors, words = ctx.table.word_errors, ctx.table.frame["w_n"].to_numpy()
    out = {}
    for name in ctx.group_names(grouping):
        mask = ctx.mask(grouping, name)
        out[name] = errors[mask].sum() / words[mask].sum() if words[mask].sum() else -1.0
    return out


def _gaps_for(ctx: MetricContext, grouping: str, metric: str) -> list[dict[str, Any]]:
    frame = ctx.table.frame
    if metric == "wer":
        num, den = ctx.table.word_errors, frame["w_n"].to_numpy()
    else:
        num, den = ctx.table.char_errors, frame["c_n"].to_numpy()
    names = ctx.group_names(grouping)
    estimates = {g: ctx.rate(num, den, grouping, g) for g in names}
    worse = _point_wer(ctx, grouping)
    values = np.column_stack([num, den])
    rows: list[dict[str, Any]] = []
    defined = [g for g in names if estimates[g].value is not None]
    for first, second in combinations(defined, 2):
        # Orient each pair by WER, the worse-served group first, for WER and CER alike.
        a, b = (second, first) if worse[second] > worse[first] else (first, second)
        g = gap(estimates[a], estimates[b], ctx.cfg.confidence)
        p = permutation_pvalue(
            ctx.unit_sums(values, grouping, a),
            ctx.unit_sums(values, grouping, b),
            ctx.cfg.n_perm if ctx.cfg.n_boot > 0 else 0,
            rng_for(ctx.cfg.seed, "perm", grouping, a, b),
        )
        rows.append(
            {
                "a": a,
                "b": b,
                "metric": metric,
                "diff": g.diff,
                "diff_ci": list(g.diff_ci) if g.diff_ci else None,
                "ratio": g.ratio,
                "ratio_ci": list(g.ratio_ci) if g.ratio_ci else None,
                "p_value": p,
            }
        )
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def gaps(ctx: MetricContext) -> None:
    """Pairwise gaps within each grouping, for WER and CER, Holm-adjusted per grouping+metric.

    Groups whose rate is undefined (no reference tokens) take part in no gap.
    """
    for grouping in ctx.table.group_columns:
        ctx.gaps[grouping] = _gaps_for(ctx, grouping, "wer") + _gaps_for(ctx, grouping, "cer")


@hookimpl
def register_metrics(register: Register) -> None:
    register("wer", wer, help="corpus word error rate with a speaker-bootstrap interval")
    register("cer", cer, help="corpus character error rate with a speaker-bootstrap interval")
    register("group_wer", group_wer, help="WER per group of each --groups column")
    register("group_cer", group_cer, help="CER per group of each --groups column")
    register("gap", gaps, help="pairwise WER/CER gaps: difference, ratio, permutation p (Holm)")
