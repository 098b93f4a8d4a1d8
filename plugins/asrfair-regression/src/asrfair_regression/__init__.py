"""Model-based fairness: each group's error rate relative to a reference group, adjusted for
covariates, from a per-utterance Poisson model with speakers as clusters (Liu et al., ICASSP
2022). An installable asrfair plugin that uses only ``asrfair.plugin``.

``--metrics regression`` fits, for every ``--groups`` grouping,

    word errors ~ offset(log reference words) + group + covariates

as a Poisson GEE (default) or GLMM, and adds one table per grouping to the report: each
group's raw rate ratio (its WER over the reference group's) beside the adjusted one, with its
interval and p-value. Options ride in the metric's name (``regression:KEY=VALUE:...``):

- ``covariates=n_words+duration+COL``: ``n_words`` is the reference word count, ``duration``
  the input's ``duration`` (or ``seconds``) column, any other name a numeric input column;
- ``reference=GROUP``: the group every ratio is against (default: the lowest raw WER among
  groups with errors, the best served);
- ``model=gee|glmm``; ``cov=bias-reduced|robust`` (GEE's sandwich, default bias-reduced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from asrfair.plugin import AsrfairError, Metric, MetricContext, Register, hookimpl
from asrfair_regression.model import (
    COV_TYPES,
    Fit,
    FitError,
    collinear_columns,
    fit_gee,
    fit_glmm,
    poisson_start,
)

MODELS = ("gee", "glmm")
DURATION_COLUMNS = ("duration", "seconds")
# asrfair's own columns of the score table: the outcome (error counts) and the texts. Adjusting
# for the outcome would explain the group effect away, so none of them is a covariate.
SCORE_COLUMNS = ("ref", "hyp", "w_sub", "w_del", "w_ins", "w_n", "c_sub", "c_del", "c_ins", "c_n")
FEW_SPEAKERS = 20  # the smallest fit whose coverage simulate.py measured (10 per group)
WORKING_GAP = 1.2  # exchangeable and independence GEE ratios further apart than this: warn


@dataclass(frozen=True)
class Options:
    covariates: list[str]
    reference: str | None
    model: str
    cov: str


def read_options(ctx: MetricContext) -> Options:
    """Every option, read up front (the core reports any option never read as unknown)."""
    model = ctx.option("model", "gee") or "gee"
    cov = ctx.option("cov", "bias-reduced") or "bias-reduced"
    if model not in MODELS:
        raise AsrfairError(f"--metrics regression:model={model}: use one of {', '.join(MODELS)}")
    if cov not in COV_TYPES:
        raise AsrfairError(f"--metrics regression:cov={cov}: use one of {', '.join(COV_TYPES)}")
    covariates = ctx.option_list("covariates")
    twice = sorted({c for c in covariates if covariates.count(c) > 1})
    if twice:
        raise AsrfairError(
            f"--metrics regression:covariates: {', '.join(twice)} named twice; name each once"
        )
    return Options(covariates, ctx.option("reference"), model, cov)


def covariate(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A covariate's values, one per utterance: computed (``n_words``) or read from a column;
    text that is not a number is named with its utterance id."""
    if name == "n_words":
        return frame["w_n"].to_numpy(dtype=float)
    column = name
    if name == "duration":
        found = [c for c in DURATION_COLUMNS if c in frame.columns]
        if not found:
            raise AsrfairError(
                "--metrics regression:covariates=duration: the input has no duration or "
                "seconds column; add one (seconds per utterance) or drop the covariate"
            )
        column = found[0]
    elif name in SCORE_COLUMNS:
        raise AsrfairError(
            f"--metrics regression:covariates={name}: {name} is asrfair's own score column "
            "(the outcome or the text), not a covariate; adjusting for it would explain the "
            "group effect away. Use n_words, duration or a column of your input"
        )
    elif name not in frame.columns:
        inputs = [str(c) for c in frame.columns if c not in SCORE_COLUMNS]
        known = ", ".join(["n_words", "duration", *inputs])
        raise AsrfairError(
            f"--metrics regression:covariates={name}: no such column; known: {known}"
        )
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AsrfairError(
            f"--metrics regression:covariates={name}: utterance {frame['id'].iloc[row]!r} has "
            f"{frame[column].iloc[row]!r} in column {column!r}, not a number; fix or drop it"
        )
    return values.to_numpy(dtype=float)


@dataclass
class Data:
    """The rows a grouping's model is fitted to, and the facts the table reports."""

    labels: np.ndarray
    errors: np.ndarray
    words: np.ndarray
    clusters: np.ndarray
    covariates: dict[str, np.ndarray]
    left_out: int


def grouping_data(ctx: MetricContext, grouping: str, names: list[str]) -> Data:
    """Labelled rows with reference words (log 0 is no offset); covariates standardised, so
    each covariate's ratio reads "per standard deviation" and the intercept stays central."""
    frame = ctx.table.frame
    values = {name: covariate(frame, name) for name in names}
    keep = ctx.labelled(grouping) & (frame["w_n"].to_numpy() > 0)
    centred = {}
    for name, x in values.items():
        x = x[keep]
        with np.errstate(all="ignore"):
            sd = float(x.std())
        if not np.isfinite(sd):
            raise AsrfairError(
                f"--metrics regression:covariates={name}: its values are too large to "
                "standardise (their spread overflows); rescale the column"
            )
        centred[name] = (x - x.mean()) / sd if sd > 0 else x - x.mean()
    return Data(
        labels=np.array([str(v) for v in ctx.labels(grouping).to_numpy()[keep]]),
        errors=ctx.table.word_errors[keep].astype(float),
        words=frame["w_n"].to_numpy()[keep].astype(float),
        clusters=ctx.table.units()[keep].astype(str),
        covariates=centred,
        left_out=int(ctx.labelled(grouping).sum() - keep.sum()),
    )


def raw_rates(data: Data) -> dict[str, float]:
    """Each group's corpus WER: its errors over its reference words."""
    return {
        g: float(data.errors[data.labels == g].sum() / data.words[data.labels == g].sum())
        for g in sorted(set(data.labels))
    }


def pick_reference(grouping: str, rates: dict[str, float], asked: str | None) -> str:
    """The asked group, else the lowest WER among groups with errors (a group with none
    cannot be a reference: every ratio against it would be infinite)."""
    if asked is not None:
        if asked not in rates:
            raise AsrfairError(
                f"--metrics regression:reference={asked}: {grouping} has no group {asked!r}; "
                f"its groups: {', '.join(rates)}"
            )
        if rates[asked] == 0:
            raise AsrfairError(
                f"--metrics regression:reference={asked}: that group has no word errors, so "
                "every rate ratio against it is infinite; pick another reference"
            )
        return asked
    with_errors = {g: r for g, r in rates.items() if r > 0}
    if not with_errors:
        raise FitError(f"no group of {grouping} has any word error: there is nothing to model")
    return min(with_errors, key=lambda g: with_errors[g])


def design(
    data: Data, groups: list[str], reference: str
) -> tuple[np.ndarray, list[str], list[str]]:
    """Intercept, one indicator per non-reference group, then the covariates; a covariate
    that the columns before it already determine is dropped and named."""
    columns = [np.ones(len(data.labels))]
    names = ["(reference)"]
    for g in groups:
        if g != reference:
            columns.append((data.labels == g).astype(float))
            names.append(f"group:{g}")
    for name, x in data.covariates.items():
        columns.append(x)
        names.append(name)
    matrix = np.column_stack(columns)
    dropped = [i for i in collinear_columns(matrix) if names[i] in data.covariates]
    notes = [
        f"covariate {names[i]} left out: it is collinear with the groups and the covariates "
        "before it (constant, or determined by them), so its effect cannot be separated"
        for i in dropped
    ]
    keep = [i for i in range(len(names)) if i not in dropped]
    return matrix[:, keep], [names[i] for i in keep], notes


def fit(data: Data, groups: list[str], reference: str, options: Options) -> tuple[Fit, list[str]]:
    """The chosen model on the groups that have errors."""
    rows = np.isin(data.labels, groups)
    sub = Data(
        data.labels[rows],
        data.errors[rows],
        data.words[rows],
        data.clusters[rows],
        {k: v[rows] for k, v in data.covariates.items()},
        0,
    )
    matrix, names, notes = design(sub, groups, reference)
    if np.linalg.matrix_rank(matrix) < matrix.shape[1]:
        raise FitError("the groups themselves are collinear: the model is not identified")
    offset = np.log(sub.words)
    if options.model == "glmm":
        start = poisson_start(sub.errors, offset, matrix)
        return fit_glmm(sub.errors, offset, matrix, sub.clusters, names, start), notes
    return fit_gee(sub.errors, offset, matrix, sub.clusters, names, options.cov), notes


def _cell(value: float, low: float, high: float) -> dict[str, Any]:
    return {"value": value, "ci": [low, high]}


def working_correlation_check(
    result: Fit, group: str, value: float, low: float, high: float
) -> list[str]:
    """A warning when the same GEE with an independence working correlation gives the group a
    ratio outside the exchangeable fit's interval, or more than a fifth away from its estimate.
    When the model holds both estimate the same ratio; far apart, the answer depends on how
    speakers are weighted (one speaker unlike the rest of its group, say), and no single
    estimate should be read alone."""
    if result.independence is None:
        return []
    other = float(np.exp(result.independence[result.names.index(f"group:{group}")]))
    if low <= other <= high and abs(np.log(other / value)) <= np.log(WORKING_GAP):
        return []
    return [
        f"{group}: the same model with an independence working correlation gives a ratio of "
        f"{other:.3f} against {value:.3f}; the answer depends on how speakers are weighted "
        "(a speaker unlike the rest of its group?): compare the raw ratio and "
        "regression:model=glmm before reading it"
    ]


def grouping_table(ctx: MetricContext, grouping: str, options: Options) -> None:
    """One grouping's model, as a table of rate ratios; a fit that fails is a warning that
    says why, in place of the table."""
    data = grouping_data(ctx, grouping, options.covariates)
    rates = raw_rates(data)
    warnings: list[str] = []
    try:
        reference = pick_reference(grouping, rates, options.reference)
        separated = [g for g, r in rates.items() if r == 0]
        modelled = [g for g in rates if g not in separated]
        if len(modelled) < 2:
            raise FitError(f"fewer than two groups of {grouping} have word errors")
        result, notes = fit(data, modelled, reference, options)
    except np.linalg.LinAlgError as exc:
        ctx.warnings.append(f"regression by {grouping}: no model: the fit failed ({exc})")
        return
    except FitError as exc:
        ctx.warnings.append(f"regression by {grouping}: no model: {exc}")
        return
    confidence = ctx.cfg.confidence
    rows: list[list[Any]] = []
    for g in rates:
        mask = data.labels == g
        speakers = len(set(data.clusters[mask]))
        raw = rates[g] / rates[reference]
        if g == reference:
            adjusted: Any = "1 (reference)"
            p: Any = None
        elif g in separated:
            adjusted, p = "n/a", None
            warnings.append(
                f"{g} has no word errors (separation): its ratio is 0 with no finite "
                "interval, so it was left out of the model"
            )
        else:
            value, low, high, p = result.ratio(f"group:{g}", confidence)
            adjusted = _cell(value, low, high)
            warnings.extend(working_correlation_check(result, g, value, low, high))
        rows.append([str(g), speakers, int(mask.sum()), raw, adjusted, p])
    for name in result.names:
        if name in data.covariates:
            value, low, high, p = result.ratio(name, confidence)
            rows.append([f"{name} (per SD)", None, None, None, _cell(value, low, high), p])
    variance = result.variance(confidence)
    if variance is not None:
        sigma2, low_end, high_end = variance
        if low_end is None or high_end is None:
            warnings.append(
                "the speaker intercept's variance is at its boundary (0): no speaker effect "
                "beyond Poisson noise, and no Wald interval for it"
            )
            rows.append(["speaker variance", None, None, None, sigma2, None])
        else:
            cell = _cell(sigma2, low_end, high_end)
            rows.append(["speaker variance", None, None, None, cell, None])
    n_speakers = len(set(data.clusters))
    if n_speakers < FEW_SPEAKERS:
        warnings.append(
            f"only {n_speakers} speakers: fewer than the {FEW_SPEAKERS} (10 per group) at which "
            "the plugin's simulation measured its intervals' coverage; read them as approximate"
        )
    if not ctx.table.has_speakers:
        warnings.append("no speaker column: each utterance is its own cluster")
    adjusted_for = ", ".join(options.covariates) or "nothing (no covariates)"
    notes_out = [
        f"Adjusted for {adjusted_for}; raw ratio = group WER / {reference} WER.",
        f"{result.method}.",
        *notes,
        *warnings,
    ]
    if data.left_out:
        notes_out.append(f"{data.left_out} utterance(s) with no reference words left out")
    ctx.add_table(
        f"Rate ratios by {grouping} vs {reference} (regression, {options.model})",
        ["group", "speakers", "utts", "raw ratio", f"adjusted ratio [{confidence:.0%} CI]", "p"],
        rows,
        notes_out,
    )


def regression(ctx: MetricContext) -> None:
    """Adjusted word-error rate ratios per grouping (see the module docstring)."""
    options = read_options(ctx)
    if not ctx.groupings:
        raise AsrfairError("metric regression compares groups: pass --groups")
    for grouping in ctx.groupings:
        grouping_table(ctx, grouping, options)


@hookimpl
def register_metrics(register: Register[Metric]) -> None:
    register(
        "regression",
        regression,
        help="adjusted WER rate ratios vs a reference group: Poisson GEE/GLMM over speakers "
        "(regression:covariates=n_words+duration:reference=G:model=gee|glmm)",
    )
