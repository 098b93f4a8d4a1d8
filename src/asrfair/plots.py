"""Figures for papers: per-group rates with intervals for a run or a scored file, and a forest
plot of the gap across a study's runs. Drawn with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

from asrfair import files
from asrfair.errors import AsrfairError
from asrfair.report import interval_phrase, small_group, small_label

matplotlib.use("Agg")

import matplotlib.pyplot as plt

FORMATS = ("png", "svg")  # what a run or study folder gets
SUFFIXES = (".png", ".svg", ".pdf")  # what `score --plot FILE` may ask for
# Metadata that would change between renders of the same data, fixed per format.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": "asrfair"},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "Creator": "asrfair"},
}


# Okabe & Ito's colour-blind-safe palette: blue for rates, vermillion for small groups, which
# also differ in marker (filled circle, open square) and so stay apart in greyscale.
BLUE, VERMILLION = "#0072B2", "#D55E00"


def _svg_settings() -> Any:
    """A fixed hash salt gives stable SVG element ids: the same data, the same file. SVG text
    stays text, so labels are searchable and selectable."""
    return matplotlib.rc_context({"svg.hashsalt": "asrfair", "svg.fonttype": "none"})


def _write(fig: Any, path: Path, fmt: str) -> Path:
    """One file, replaced whole."""
    with _svg_settings(), files.replacing(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=_METADATA[fmt])
    return path


def svg_element(fig: Any) -> str:
    """A figure as one ``<svg>`` element to inline in an HTML page (the HTML exporter), drawn
    as the SVG files are; the XML declaration and DOCTYPE, which HTML does not take, dropped."""
    buffer = io.StringIO()
    with _svg_settings():
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=_METADATA["svg"])
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = [_write(fig, stem.with_suffix(f".{fmt}"), fmt) for fmt in FORMATS]
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


def _group_panel(ax: Any, data: dict[str, Any], grouping: str, metric: str) -> None:
    """One grouping's rates as points with interval arms: bars would suggest a mass from 0
    that a rate does not have, and hide how wide a small group's interval is. Groups with
    too few speakers are drawn apart (open vermillion squares), as every table flags them."""
    entries = [e for e in data["groups"][grouping] if e.get(metric) is not None]
    method = data.get("method", {})
    small = [small_group(e, method) for e in entries]
    for flagged, style in ((False, {"fmt": "o", "color": BLUE}), (True, _SMALL_STYLE)):
        chosen = [
            (x, e) for x, (e, s) in enumerate(zip(entries, small, strict=True)) if s == flagged
        ]
        if not chosen:
            continue
        points = [_errorbar(e[metric], e.get(f"{metric}_ci")) for _, e in chosen]
        ax.errorbar(
            [x for x, _ in chosen],
            [p[0] for p in points],
            yerr=[[p[1] for p in points], [p[2] for p in points]],
            ecolor="black",
            capsize=4,
            label=small_label(method) if flagged else None,
            **style,
        )
    overall = data["overall"].get(metric)
    if overall is not None:
        ax.axhline(100 * overall, color="grey", linestyle="--", linewidth=1, label="overall")
    if overall is not None or any(small):
        ax.legend(loc="best", fontsize=8, framealpha=0.8)
    xs = list(range(len(entries)))
    # Labels are user data: "$" must not start TeX maths.
    labels = [str(e["group"]) for e in entries]
    ax.set_xticks(xs, labels, rotation=30, ha="right", parse_math=False)
    ax.set_xlim(-0.5, len(entries) - 0.5)
    ax.set_title(f"{metric.upper()} by {grouping}")
    ax.set_ylabel(f"{metric.upper()} (%)")


_SMALL_STYLE: dict[str, Any] = {
    "fmt": "s",
    "color": VERMILLION,
    "markerfacecolor": "white",
    "markeredgewidth": 1.5,
}


def _groups_figure(data: dict[str, Any], metrics: tuple[str, ...]) -> Any:
    """One row per metric, one panel per grouping, the method in the title."""
    groupings = list(data["groups"])
    fig, axes = plt.subplots(
        len(metrics),
        len(groupings),
        figsize=(4 * len(groupings), 3.6 * len(metrics)),
        squeeze=False,
        layout="constrained",
    )
    for row, metric in zip(axes, metrics, strict=True):
        for ax, grouping in zip(row, groupings, strict=True):
            _group_panel(ax, data, grouping, metric)
    open_end = any(
        (entry.get(f"{metric}_ci") or [0, 0])[1] is None
        for entries in data["groups"].values()
        for entry in entries
        for metric in metrics
    )
    title = interval_phrase(data.get("method", {}))
    fig.suptitle(title + ("; open upper ends drawn to 100%" if open_end else ""), fontsize=8)
    return fig


def plot_run_groups(data: dict[str, Any], stem: Path) -> list[Path]:
    """WER per group of a run, with the speaker-bootstrap intervals, as PNG and SVG."""
    if not data["groups"]:
        return []
    return _save(_groups_figure(data, ("wer",)), stem)


def check_plot_path(path: Path) -> str:
    """The format a ``--plot`` file asks for by its suffix; checked before any scoring."""
    if path.suffix.lower() not in SUFFIXES:
        raise AsrfairError(
            f"--plot {path}: name a .png, .svg or .pdf file (the suffix picks the format)"
        )
    if path.is_dir():
        raise AsrfairError(
            f"--plot {path} is a folder; give a file path such as {path / 'groups.png'}"
        )
    return path.suffix.lower().removeprefix(".")


def _group_metrics(data: dict[str, Any]) -> tuple[str, ...]:
    """WER and CER, those of them that some group has."""
    return tuple(
        m for m in ("wer", "cer") if any(m in e for g in data["groups"].values() for e in g)
    )


def plot_groups(data: dict[str, Any], path: Path) -> Path:
    """A scored report's WER and CER per group with intervals, in the format ``path`` names."""
    fmt = check_plot_path(path)
    if not data["groups"]:
        raise AsrfairError(f"--plot {path}: nothing to plot per group; pass --groups")
    metrics = _group_metrics(data)
    if not metrics:
        raise AsrfairError(f"--plot {path}: no per-group WER or CER (add group_wer to --metrics)")
    fig = _groups_figure(data, metrics)
    _write(fig, path, fmt)
    plt.close(fig)
    return path


def groups_svg(data: dict[str, Any]) -> str | None:
    """The ``--plot`` figure (WER and CER per group) as an ``<svg>`` element; None when the
    report has no per-group rates."""
    metrics = _group_metrics(data) if data.get("groups") else ()
    return svg_element(_groups_figure(data, metrics)) if metrics else None


def plot_gap_forest(study: dict[str, Any], stem: Path) -> list[Path]:
    """The WER gap of each run with its interval, as PNG and SVG."""
    fig = _forest_figure(study)
    return [] if fig is None else _save(fig, stem)


def gap_forest_svg(study: dict[str, Any]) -> str | None:
    """The study's gap forest as an ``<svg>`` element; None when its runs have no gaps."""
    fig = _forest_figure(study)
    return None if fig is None else svg_element(fig)


def _forest_figure(study: dict[str, Any]) -> Any:
    """The WER gap of each run with its interval: does fine-tuning on a subset move it?"""
    runs = study["runs"]
    groupings = list(runs[0]["gaps"]) if runs else []
    if not groupings:
        return None
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
            color=BLUE,
            capsize=3,
        )
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(ys, labels, parse_math=False)
        if reference:
            ax.set_xlabel(f"WER({reference[0]}) - WER({reference[1]}), points")
        ax.set_title(f"Gap by {grouping}, per run")
    return fig
