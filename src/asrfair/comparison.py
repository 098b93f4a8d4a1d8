"""Paired comparison of two systems scored on the same utterances.

Two models are compared on the very same speakers and sentences, so their
difference is far more precise than two separate intervals suggest. The paired
bootstrap gives that difference an interval and a probability of improvement.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from asrfair import __version__
from asrfair.errors import AsrfairError
from asrfair.metrics import MetricContext
from asrfair.report import Report, speakers_method
from asrfair.runs import load_run
from asrfair.scoring import ScoreTable
from asrfair.stats import StatsConfig, paired


def _aligned(a: ScoreTable, b: ScoreTable) -> tuple[ScoreTable, ScoreTable, list[str]]:
    """Both tables restricted to their shared ids, in A's order; refs must agree."""
    ids_a, ids_b = a.frame["id"], b.frame["id"]
    shared = ids_a[ids_a.isin(set(ids_b))]
    if shared.empty:
        raise AsrfairError("the two files share no utterance ids; compare needs the same test set")
    notes = []
    only_a, only_b = len(ids_a) - len(shared), len(ids_b) - len(shared)
    if only_a or only_b:
        notes.append(
            f"compared on {len(shared):,} shared ids; {only_a:,} only in A, {only_b:,} only in B"
        )
    fa = a.frame.set_index("id").loc[shared].reset_index()
    fb = b.frame.set_index("id").loc[shared].reset_index()
    for column, what in (("ref", "references"), ("speaker", "speakers")):
        if column not in fa.columns or column not in fb.columns:
            continue  # a file without speakers takes A's
        differs = fa[column] != fb[column]
        if differs.any():
            bad = fa["id"][differs].iloc[0]
            raise AsrfairError(
                f"utterance {bad!r} has different {what} in the two files ({differs.sum()} "
                f"such ids); both must describe the same utterances"
            )
    return ScoreTable(fa, a.groupings), ScoreTable(fb, a.groupings), notes


def _paired_entry(
    ctx: MetricContext, b: ScoreTable, grouping: str | None, group: str | None
) -> dict[str, Any]:
    entry = dict(ctx.entry(grouping, group))
    frame_a = ctx.table.frame
    per_metric = {
        "wer": (ctx.table.word_errors, b.word_errors, frame_a["w_n"].to_numpy()),
        "cer": (ctx.table.char_errors, b.char_errors, frame_a["c_n"].to_numpy()),
    }
    for metric, (err_a, err_b, n) in per_metric.items():
        sums = ctx.unit_sums(np.column_stack([err_a, err_b, n]), grouping, group)
        result = asdict(paired(sums, ctx.cfg, metric, grouping or "", group or "(overall)"))
        result["diff_ci"] = list(result["diff_ci"]) if result["diff_ci"] else None
        entry["warnings"] = entry["warnings"] + [f"{metric}: {n}" for n in result.pop("notes")]
        entry[metric] = result
    return entry


def build_compare_report(
    a: ScoreTable, b: ScoreTable, cfg: StatsConfig, *, config: dict[str, Any] | None = None
) -> Report:
    """Paired bootstrap of B against A, overall and per group (groups and speakers from A)."""
    table_a, table_b, notes = _aligned(a, b)
    ctx = MetricContext(table_a, cfg)
    overall = _paired_entry(ctx, table_b, None, None)
    groups = {
        grouping: [_paired_entry(ctx, table_b, grouping, g) for g in ctx.group_names(grouping)]
        for grouping in table_a.groupings
    }
    warnings = [*a.notes, *b.notes, *notes]
    if not table_a.has_speakers:
        warnings.append("no speaker column: draws resample utterances")
    method = cfg.method(ctx.unit)
    for key in list(method):
        if key.startswith(("gap", "p_adjust", "largest")) or key in ("permutations", "gaps"):
            method.pop(key)
    method["interval"] = "percentile" if cfg.intervals_on else "none"
    method["interval_method"] = "paired cluster-bootstrap percentile interval of B - A"
    method["bootstrap"] = f"cluster over {ctx.unit}s, paired" if cfg.intervals_on else "none"
    method["draws"] = cfg.n_boot
    method |= speakers_method(table_a.speakers_unknown)
    method["comparison"] = (
        "paired bootstrap (Bisani & Ney 2004): B - A on the same draws; P(B better), "
        "P(A better) and P(tie) are shares of draws"
    )
    data = {
        "systems": dict((config or {}).get("systems", {})),
        "overall": overall,
        "groups": groups,
        "method": method,
        "warnings": warnings,
        "config": {"asrfair_version": __version__, **(config or {})},
    }
    return Report("compare", data)


def compare_runs(folder_a: Path, folder_b: Path, cfg: StatsConfig) -> Report:
    """Paired comparison of two runs; they must share the test set exactly."""
    table_a, config_a = load_run(folder_a)
    table_b, _ = load_run(folder_b)
    ids_a, ids_b = set(table_a.frame["id"]), set(table_b.frame["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise AsrfairError(
            f"{folder_a} and {folder_b} have different test sets: {len(only_a)} ids only in A "
            f"(e.g. {', '.join(only_a[:2]) or '-'}), {len(only_b)} only in B "
            f"(e.g. {', '.join(only_b[:2]) or '-'}); compare runs made with the same split"
        )
    config = {
        "inputs": [str(folder_a), str(folder_b)],
        "systems": {"a": str(folder_a), "b": str(folder_b)},
        "groups": list(table_a.groupings),
        "normalizer": config_a["options"].get("normalizer", ""),
    }
    return build_compare_report(table_a, table_b, cfg, config=config)
