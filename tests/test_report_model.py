"""The typed report model: stored and fresh reports read into dataclasses and write back the
very same JSON bytes; rates are known from their type; each kind has a registered layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import asrfair
from asrfair import hookimpl
from asrfair.default_plugins.exporters import to_json
from asrfair.errors import AsrfairError
from asrfair.metrics import MetricContext, run_metrics
from asrfair.report import LAYOUTS, Report, report_tables
from asrfair.report_model import (
    CompareBody,
    Gap,
    GroupEntry,
    PairedEntry,
    RateCell,
    ScoreBody,
    StudyBody,
)
from asrfair.runs import load_stored_report
from asrfair.scoring import ScoreTable, score
from asrfair.stats import StatsConfig
from asrfair.testing import with_plugins
from asrfair.text import identity
from conftest import gender_rows

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "notebook_study"
# A run's metrics.json as `asrfair study` wrote it under examples/notebook_study/runs/.
AUDIT = Path(__file__).resolve().parent / "data" / "reports" / "audit_metrics.json"


def _reread(text: str, kind: str) -> str:
    """The JSON exporter's text after a trip through the typed model."""
    return to_json(Report(kind, json.loads(text)))


def test_the_example_study_reads_into_types_and_writes_back_byte_identical() -> None:
    report = load_stored_report(STUDY)
    assert isinstance(report.body, StudyBody)
    run = report.body.runs[0]
    assert list(run.overall.rates) == ["wer", "cer"]
    assert isinstance(run.groups["gender"][0], GroupEntry)
    assert all(isinstance(g, Gap) for g in run.gaps["gender"])
    assert isinstance(report.body.comparisons[0].overall.paired("wer"), PairedEntry)
    assert to_json(report) == (STUDY / "study.json").read_text(encoding="utf-8")


def test_a_stored_audit_run_writes_back_byte_identical(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_bytes(AUDIT.read_bytes())
    report = load_stored_report(tmp_path)
    assert report.kind == "audit" and isinstance(report.body, ScoreBody)
    assert report.body.run is not None and report.body.run["train_subset"] == "female"
    assert to_json(report) == AUDIT.read_text(encoding="utf-8")
    assert [t.title for t in report_tables(report)][:2] == [
        "Run",
        "Training subset 'female' by gender",
    ]


def test_fresh_score_and_compare_reports_round_trip() -> None:
    frame = pd.DataFrame(gender_rows())
    scored = asrfair.score(frame, groups=["gender", "age", "gender*age"], bootstrap=200)
    text = scored.to_json()
    assert _reread(text, "score") == text
    other = frame.assign(hyp=frame["ref"])
    compared = asrfair.compare(frame, other, groups=["gender"], bootstrap=200)
    text = compared.to_json()
    assert isinstance(compared.report.body, CompareBody)
    assert _reread(text, "compare") == text


def _table() -> ScoreTable:
    rows = gender_rows(n_speakers=4, per_speaker=2)
    return score(pd.DataFrame(rows), identity, groupings=("gender",))


def test_rates_are_known_from_their_type_not_from_a_ci_key() -> None:
    class Plugin:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            def fields(ctx: MetricContext) -> None:
                wrong = (ctx.table.word_errors > 0).astype(float)
                ctx.record_rate("ser", wrong, np.ones(len(wrong)))
                ctx.overall["by_hand"] = 0.5  # a rate written without record_rate
                ctx.overall["by_hand_ci"] = [0.25, 0.75]
                ctx.overall["hyp_words"] = 7  # a count: no column
                ctx.overall["odd_ci"] = [0.0, 1.0]  # no "odd" before it: not a rate

            register("fields", fields)

    chosen = with_plugins(Plugin()).chosen_metrics(["wer", "fields"])
    report = run_metrics(_table(), StatsConfig(n_boot=0), chosen)
    overall = report.body.overall if isinstance(report.body, ScoreBody) else None
    assert overall is not None
    assert list(overall.rates) == ["wer", "ser", "by_hand"]
    assert overall.rate("by_hand") == RateCell(0.5, (0.25, 0.75))
    assert overall.values["odd_ci"] == [0.0, 1.0] and overall.values["hyp_words"] == 7
    assert report.data["overall"]["ser_ci"] is None and report.data["overall"]["hyp_words"] == 7
    header = report_tables(report)[0].columns
    assert header[:4] == ["group", "WER", "SER", "BY_HAND"] and "ODD" not in header


def test_record_rate_declares_its_rate() -> None:
    ctx = MetricContext(_table(), StatsConfig(n_boot=0))
    ctx.record_rate("ins", ctx.table.frame["w_ins"].to_numpy(), ctx.table.frame["w_n"].to_numpy())
    ctx.record_rate(
        "ins",
        ctx.table.frame["w_ins"].to_numpy(),
        ctx.table.frame["w_n"].to_numpy(),
        grouping="gender",
    )
    assert ctx.rate_fields == ["ins"]


def test_an_older_gap_keeps_its_fields_and_takes_p_holm_as_adjusted() -> None:
    old = {"a": "f", "b": "m", "metric": "wer", "diff": 0.1, "diff_ci": None, "ratio": 2.0}
    old |= {"ratio_ci": [1.5, None], "p_value": 0.01, "p_holm": 0.02, "warnings": []}
    gap = Gap.from_json(old)
    assert gap.adjusted == 0.02 and gap.label == "f vs m" and gap.ratio.ci == (1.5, None)
    assert json.dumps(gap.to_json()) == json.dumps(old)  # no p_adjusted, no kind added
    gap.p_adjusted = 0.03
    assert list(gap.to_json())[-1] == "p_adjusted"  # set since: written after what was read


def test_report_data_is_a_copy_and_changes_go_through_the_body() -> None:
    report = Report("score", json.loads(AUDIT.read_text(encoding="utf-8")))
    report.data["warnings"].append("lost")
    assert "lost" not in report.data["warnings"]
    assert isinstance(report.body, ScoreBody)
    report.body.warnings.append("kept")
    assert report.data["warnings"][-1] == "kept"


def test_each_kind_has_its_layout_and_an_unknown_kind_is_an_error() -> None:
    assert set(LAYOUTS) == {"score", "audit", "compare", "inspect", "study"}
    with pytest.raises(AsrfairError, match="unknown report kind 'nope'"):
        Report("nope", {})
    report = load_stored_report(STUDY)
    report.kind = "nope"
    with pytest.raises(AsrfairError, match="no table layout for report kind 'nope'"):
        report_tables(report)
