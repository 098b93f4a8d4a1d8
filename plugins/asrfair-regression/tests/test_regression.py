"""The regression plugin: its fits, its failure messages and its place in every exporter."""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from pathlib import Path
from typing import Any

import asrfair_regression
import numpy as np
import pandas as pd
import pytest
from asrfair_regression import Options, fit
from asrfair_regression.model import glmm_loglik
from scipy import integrate, stats

import asrfair
from asrfair.testing import run_cli, with_plugins

HERE = Path(__file__).resolve().parents[1]
PLUGINS = with_plugins(asrfair_regression)


def _simulation() -> Any:
    spec = importlib.util.spec_from_file_location("regression_simulate", HERE / "simulate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fit_recovers_a_known_ratio_that_the_raw_ratio_misses() -> None:
    sim = _simulation()
    data = sim.simulate(80, np.random.default_rng(1))
    result, _ = fit(data, ["A", "B"], "A", Options(["n_words"], "A", "gee", "bias-reduced"))
    value, low, high, p = result.ratio("group:B", 0.95)
    assert low < sim.TRUE_RATIO < high
    assert abs(value - sim.TRUE_RATIO) < 0.15
    assert p < 0.001
    per_sd = np.exp(sim.LENGTH_SLOPE * data.words.std())  # the length effect, per SD of n_words
    _, sd_low, sd_high, _ = result.ratio("n_words", 0.95)
    assert sd_low < per_sd < sd_high
    a, b = data.labels == "A", data.labels == "B"
    raw = (data.errors[b].sum() / data.words[b].sum()) / (
        data.errors[a].sum() / data.words[a].sum()
    )
    assert raw > high  # the raw ratio is confounded by utterance length
    glmm, _ = fit(data, ["A", "B"], "A", Options(["n_words"], "A", "glmm", "bias-reduced"))
    _, g_low, g_high, _ = glmm.ratio("group:B", 0.95)
    assert g_low < sim.TRUE_RATIO < g_high
    variance = glmm.variance(0.95)
    assert variance is not None
    assert variance[1] < sim.SPEAKER_SD**2 < variance[2]


def test_the_glmm_likelihood_equals_direct_integration() -> None:
    rng = np.random.default_rng(0)
    errors = rng.poisson(2.0, size=7).astype(float)
    design = np.column_stack([np.ones(7), rng.normal(size=7)])
    offset = np.log(rng.integers(5, 15, size=7).astype(float))
    index = np.array([0, 0, 0, 1, 1, 2, 2])
    theta = np.array([-1.5, 0.2, np.log(0.5)])
    eta = offset + design @ theta[:2]

    def speaker(k: int) -> float:
        rows = index == k

        def density(b: float) -> float:
            mean = np.exp(eta[rows] + b)
            return float(np.prod(stats.poisson.pmf(errors[rows], mean)) * stats.norm.pdf(b, 0, 0.5))

        return float(np.log(integrate.quad(density, -8, 8, epsabs=1e-14)[0]))

    direct = sum(speaker(k) for k in range(3))
    assert glmm_loglik(theta, errors, offset, design, index, 3) == pytest.approx(direct, abs=1e-7)


def _rows(
    speakers: int = 6, per: int = 5, zero_group: str | None = None, seed: int = 0
) -> pd.DataFrame:
    """Transcripts of two genders; ``zero_group``'s hypotheses are exact (no errors)."""
    rng = np.random.default_rng(seed)
    words = [f"mot{i}" for i in range(12)]
    rows = []
    for gender in ("female", "male"):
        for s in range(speakers):
            for u in range(per):
                n = int(rng.integers(4, 12))
                ref = words[:n]
                hyp = list(ref)
                if gender != zero_group:
                    for i in range(n):
                        if rng.random() < (0.3 if gender == "female" else 0.15):
                            hyp[i] = "x"
                rows.append(
                    {
                        "id": f"{gender}{s}-{u}",
                        "speaker": f"{gender}{s}",
                        "gender": gender,
                        "ref": " ".join(ref),
                        "hyp": " ".join(hyp),
                        "snr": float(rng.normal(20, 5)),
                    }
                )
    return pd.DataFrame(rows)


def _score(frame: pd.DataFrame, metric: str) -> dict[str, Any]:
    result = asrfair.score(
        frame,
        groups="gender",
        metrics=["wer", "group_wer", metric],
        bootstrap=0,
        permutations=0,
        plugins=PLUGINS,
    )
    data: dict[str, Any] = result.report.data
    return data


def test_the_table_has_raw_and_adjusted_ratios_against_the_best_served_group() -> None:
    data = _score(_rows(), "regression:covariates=n_words+snr")
    (table,) = data["tables"]
    assert table["metric"] == "regression"
    assert table["title"] == "Rate ratios by gender vs male (regression, gee)"
    rows = {row[0]: row for row in table["rows"]}
    female = {g["group"]: g for g in data["groups"]["gender"]}
    assert rows["female"][3] == pytest.approx(female["female"]["wer"] / female["male"]["wer"])
    adjusted = rows["female"][4]
    assert adjusted["ci"][0] < adjusted["value"] < adjusted["ci"][1]
    assert 0 <= rows["female"][5] <= 1
    assert rows["male"][4] == "1 (reference)"
    assert {"n_words (per SD)", "snr (per SD)"} <= set(rows)
    assert "Adjusted for n_words, snr" in table["notes"][0]
    assert "Mancl-DeRouen" in table["notes"][1]


def test_reference_and_glmm_options() -> None:
    data = _score(_rows(), "regression:reference=female:model=glmm")
    (table,) = data["tables"]
    rows = {row[0]: row for row in table["rows"]}
    assert rows["male"][4]["value"] < 1
    assert "speaker variance" in rows
    assert "Gauss-Hermite" in table["notes"][1]


def test_separation_is_named_and_the_group_left_out() -> None:
    frame = _rows(speakers=8)
    frame = pd.concat([frame, _rows(speakers=8, seed=3).assign(gender="child")])
    frame.loc[frame["gender"] == "child", "hyp"] = frame.loc[frame["gender"] == "child", "ref"]
    frame["id"] = [f"u{i}" for i in range(len(frame))]
    frame["speaker"] = frame["gender"] + frame["speaker"]
    data = _score(frame, "regression")
    (table,) = data["tables"]
    rows = {row[0]: row for row in table["rows"]}
    assert rows["child"][3] == 0 and rows["child"][4] == "n/a"
    assert any("child has no word errors (separation)" in n for n in table["notes"])
    assert rows["female"][4]["value"] > 1


def test_collinear_covariates_are_dropped_and_named() -> None:
    frame = _rows()
    frame["twice"] = 2 * frame["snr"]
    frame["constant"] = 3.0
    data = _score(frame, "regression:covariates=snr+twice+constant")
    (table,) = data["tables"]
    notes = " ".join(table["notes"])
    assert "covariate twice left out: it is collinear" in notes
    assert "covariate constant left out: it is collinear" in notes
    assert "snr (per SD)" in {row[0] for row in table["rows"]}


def test_few_speakers_warn_and_too_few_for_the_sandwich_fit_nothing() -> None:
    data = _score(_rows(speakers=6), "regression")
    assert any("only 12 speakers: fewer than the 20" in n for n in data["tables"][0]["notes"])
    data = _score(_rows(speakers=10), "regression")
    assert not any("only" in n for n in data["tables"][0]["notes"])
    data = _score(_rows(speakers=1), "regression:covariates=n_words")
    assert "tables" not in data
    assert (
        "regression by gender: no model: 2 speaker(s) for 3 coefficients: the sandwich "
        "variance needs more speakers than coefficients"
    ) in data["warnings"]


def test_a_fit_that_does_not_converge_is_a_warning_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from statsmodels.genmod.generalized_estimating_equations import GEE
    from statsmodels.tools.sm_exceptions import IterationLimitWarning

    real = GEE.fit

    def stuck(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            "Iteration limit reached prior to convergence", IterationLimitWarning, stacklevel=2
        )
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GEE, "fit", stuck)
    data = _score(_rows(), "regression")
    assert "tables" not in data
    assert (
        "regression by gender: no model: the Poisson GEE did not converge (Iteration limit "
        "reached prior to convergence)"
    ) in data["warnings"]


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("regression:covariates=volume", "regression:covariates=volume: no such column; known:"),
        ("regression:covariates=duration", "the input has no duration or seconds column"),
        ("regression:covariates=gender", "'female' in column 'gender', not a number"),
        ("regression:reference=child", "gender has no group 'child'; its groups: female, male"),
        ("regression:model=lmm", "regression:model=lmm: use one of gee, glmm"),
        ("regression:cov=hc3", "regression:cov=hc3: use one of bias-reduced, robust"),
        ("regression:covarites=n_words", "has no option 'covarites'; its options: cov, covariates"),
        ("regression:n_words", "'n_words' is not an option; write regression:KEY=VALUE"),
        ("regression:covariates=w_ins", "w_ins is asrfair's own score column (the outcome"),
        ("regression:covariates=n_words+n_words", "n_words named twice; name each once"),
        ("regression:covariates=huge", "its values are too large to standardise"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, metric: str, message: str) -> None:
    path = tmp_path / "t.csv"
    _rows().assign(huge=lambda f: np.resize([1e308, -1e308], len(f))).to_csv(path, index=False)
    result = run_cli(["score", str(path), "--groups", "gender", "--metrics", metric], PLUGINS)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_reference_without_errors_and_no_groups_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _rows(zero_group="male").to_csv(path, index=False)
    result = run_cli(
        ["score", str(path), "--groups", "gender", "--metrics", "regression:reference=male"],
        PLUGINS,
    )
    assert result.exit_code == 2
    assert "that group has no word errors, so every rate ratio against it is infinite" in (
        result.output
    )
    result = run_cli(["score", str(path), "--metrics", "regression"], PLUGINS)
    assert result.exit_code == 2
    assert "metric regression compares groups: pass --groups" in result.output


@pytest.mark.parametrize("fmt", ["rich", "md", "latex", "csv", "json"])
def test_every_exporter_shows_the_table(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "t.csv"
    _rows().to_csv(path, index=False)
    args = ["score", str(path), "--groups", "gender", "--bootstrap", "0", "--permutations", "0"]
    result = run_cli([*args, "--metrics", "wer,regression:covariates=n_words", "-f", fmt], PLUGINS)
    assert result.exit_code == 0, result.output
    out = result.stdout
    if fmt == "csv":
        rows = pd.read_csv(io.StringIO(out))
        table = rows[rows["scope"] == "table:Rate ratios by gender vs male (regression, gee)"]
        (adjusted,) = table[
            (table["group"] == "female") & (table["field"] == "adjusted ratio [95% CI]")
        ].itertuples()
        assert float(adjusted.ci_low) < float(adjusted.value) < float(adjusted.ci_high)
    elif fmt == "json":
        assert json.loads(out)["tables"][0]["rows"][0][0] == "female"
    else:
        assert "Rate ratios by gender vs male" in out
        assert "1 (reference)" in out


def test_errors_without_variation_are_a_warning_not_a_nan() -> None:
    frame = _rows().assign(hyp="")  # every word deleted: nothing to estimate uncertainty from
    data = _score(frame, "regression")
    assert "tables" not in data
    assert any(
        w.startswith("regression by gender: no model: the Poisson GEE gave a zero variance")
        for w in data["warnings"]
    ), data["warnings"]


def test_a_fit_that_depends_on_the_working_correlation_says_so() -> None:
    """One speaker of the bundled example transcripts inserts ten words in every utterance:
    the exchangeable GEE weighs her down (0.974 against a raw 1.403, found by a review); the
    independence fit disagrees, and the table must say that the answer depends on it."""
    from importlib.resources import files

    frame = pd.read_csv(str(files("asrfair") / "examples" / "transcripts.csv"))
    calm = _score(frame, "regression")["tables"][0]
    assert not any("working correlation gives" in n for n in calm["notes"]), calm["notes"]
    frame.loc[frame["speaker"] == "spk03", "hyp"] += " x" * 10
    (table,) = _score(frame, "regression")["tables"]
    assert any(
        "female_feminine: the same model with an independence working correlation gives a "
        "ratio of 1.403 against 0.974" in n
        for n in table["notes"]
    ), table["notes"]
