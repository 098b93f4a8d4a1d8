"""Figures for papers: per-group WER with intervals for a run, and a forest plot of the gap
across a study's runs. Drawn with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from asrfair import files
from asrfair.report import interval_phrase

matplotlib.use("Agg")

import matplotlib.pyplot as plt

FORMATS = ("png", "svg")


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = stem.with_suffix(f".{fmt}")
        # A fixed date keeps SVGs byte-stable between renders of the same data.
        metadata = {"Date": None} if fmt == "svg" else {"Software": "asrfair"}
        # A fixed hash salt gives stable SVG element ids: the same data, the same file.
        with matplotlib.rc_context({"svg.hashsalt": "asrfair"}), files.replacing(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _errorbar(rate: float | None, ci: list[float | None] | None) -> tuple[float, float, float]:
    """Point and the lower/upper arm lengths, in percent (0 when there is no interval).

    An open upper end (unbounded) is drawn up to 100%, which the figure's title says.
    """
    if rate is None:
        return 0.0, 0.0, 0.0
    lo, hi = ci if ci else (rate, rate)
    lo = rate if lo is None else lo
    hi = max(1.0, rate) if hi is None else hi
    return 100 * rate, 100 * (rate - lo), 100 * (hi - rate)


def plot_run_groups(data: dict[str, Any], stem: Path) -> list[Path]:
    """WER per group, one panel per grouping, with the speaker-bootstrap interval as error bars."""
    groupings = list(data["groups"])
    if not groupings:
        return []
    fig, axes = plt.subplots(
        1, len(groupings), figsize=(4 * len(groupings), 3.6), squeeze=False, layout="constrained"
    )
    for ax, grouping in zip(axes[0], groupings, strict=True):
        entries = [e for e in data["groups"][grouping] if e.get("wer") is not None]
        points = [_errorbar(e["wer"], e.get("wer_ci")) for e in entries]
        xs = range(len(entries))
        ax.bar(xs, [p[0] for p in points], color="#8fb3d9", edgecolor="#2b5d8a")
        ax.errorbar(
            xs,
            [p[0] for p in points],
            yerr=[[p[1] for p in points], [p[2] for p in points]],
            fmt="none",
            ecolor="black",
            capsize=4,
        )
        overall = data["overall"].get("wer")
        if overall is not None:
            ax.axhline(100 * overall, color="grey", linestyle="--", linewidth=1, label="overall")
            ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
        ax.set_xticks(list(xs), [str(e["group"]) for e in entries], rotation=30, ha="right")
        ax.set_title(f"WER by {grouping}")
        ax.set_ylabel("WER (%)")
    fig.suptitle(
        interval_phrase(data.get("method", {})) + "; open upper ends drawn to 100%", fontsize=8
    )
    return _save(fig, stem)


def plot_gap_forest(study: dict[str, Any], stem: Path) -> list[Path]:
    """The WER gap of each run with its interval: does fine-tuning on a subset move it?"""
    runs = study["runs"]
    groupings = list(runs[0]["gaps"]) if runs else []
    if not groupings:
        return []
    fig, axes = plt.subplots(
        len(groupings),
        1,
        figsize=(6, (0.45 * len(runs) + 1.4) * len(groupings)),
        squeeze=False,
        layout="constrained",
    )
    for ax, grouping in zip(axes[:, 0], groupings, strict=True):
        labels, points, reference = [], [], None
        for run in runs:
            gaps = [g for g in run["gaps"].get(grouping, []) if g["metric"] == "wer"]
            gap = max(gaps, key=lambda g: abs(g["diff"] or 0), default=None)
            if gap is None or gap["diff"] is None:
                continue
            reference = reference or (gap["a"], gap["b"])
            sign = 1 if (gap["a"], gap["b"]) == reference else -1
            mid, down, up = _errorbar(gap["diff"], gap.get("diff_ci"))
            points.append((sign * mid, down if sign > 0 else up, up if sign > 0 else down))
            labels.append(run["name"])
        ys = list(range(len(points)))[::-1]
        ax.errorbar(
            [p[0] for p in points],
            ys,
            xerr=[[p[1] for p in points], [p[2] for p in points]],
            fmt="o",
            color="#2b5d8a",
            capsize=3,
        )
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(ys, labels)
        if reference:
            ax.set_xlabel(f"WER({reference[0]}) - WER({reference[1]}), points")
        ax.set_title(f"Gap by {grouping}, per run")
    return _save(fig, stem)
