"""Misuse found by a hostile review: every one ends in one line that says what to fix, never a
traceback and never a number that looks right and is not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import asrfair
from asrfair import cli, plugins
from asrfair.errors import AsrfairError
from asrfair.plugin import hookimpl
from asrfair.plugins import Plugins
from asrfair.testing import run_cli, with_plugins

ROOT = Path(__file__).resolve().parents[1]
TRANSCRIPTS = ROOT / "src" / "asrfair" / "examples" / "transcripts.csv"
STORED = ROOT / "tests" / "data" / "reports" / "audit_metrics.json"
FAST = ["--bootstrap", "200", "--permutations", "0"]
runner = CliRunner()


def _metric_plugin(metric: Any) -> Plugins:
    class Bad:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register("bad", metric)

    return with_plugins(Bad())


def _ones(ctx: Any) -> np.ndarray:
    return np.ones(len(ctx.table.frame))


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            lambda ctx: ctx.record_rate("wer", _ones(ctx), _ones(ctx)),
            "metric 'bad' records the rate 'wer' overall, which metric 'wer' already recorded",
        ),
        (lambda ctx: ctx.overall.__setitem__("wer", float("nan")), "not a finite number"),
        (lambda ctx: ctx.overall.__setitem__("wer", -0.5), "a rate must be a number of 0 or more"),
        (lambda ctx: ctx.overall.__setitem__("wer_ci", [0.9, 0.1]), "low end is above its high"),
    ],
)
def test_a_metric_cannot_overwrite_or_corrupt_the_report(metric: Any, message: str) -> None:
    args = ["score", str(TRANSCRIPTS), "--groups", "gender", *FAST]
    result = run_cli([*args, "--metrics", "wer,cer,group_wer,gap,bad"], _metric_plugin(metric))
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_plugin_object_that_cannot_be_called_is_refused_when_registered() -> None:
    class NotCallable:
        @hookimpl
        def register_exporters(self, register):  # type: ignore[no-untyped-def]
            register("nc", 42)

    with pytest.raises(AsrfairError, match="registered exporter 'nc' as a int, which cannot"):
        with_plugins(NotCallable()).exporters()


def test_an_exporter_returning_nothing_is_named() -> None:
    class Nothing:
        @hookimpl
        def register_exporters(self, register):  # type: ignore[no-untyped-def]
            register("nothing", lambda report: None)

    result = run_cli(["score", str(TRANSCRIPTS), "-f", "nothing", *FAST], with_plugins(Nothing()))
    assert result.exit_code == 2
    assert "the exporter returned a NoneType, not text or a rich renderable" in result.stderr


def test_plugins_command_names_a_clash_instead_of_a_traceback() -> None:
    class Clash:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register("wer", lambda ctx: None)

    result = run_cli(["plugins"], with_plugins(Clash()))
    assert result.exit_code == 2
    assert "'wer' is registered by both" in result.stderr and "Traceback" not in result.output


def test_a_blocked_name_that_matches_no_plugin_is_a_warning(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(plugins.BLOCK_ENV, "agebucket")  # a typo of agebuckets
    result = runner.invoke(cli.app, ["plugins", "--json"])
    assert "ASRFAIR_BLOCK_PLUGINS names 'agebucket', which no installed plugin" in result.stderr


# --- the Python API's arguments -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": 5}, "--groups: give column names as text"),
        ({"metrics": None}, "metrics: give metric names"),
        ({"metrics": []}, "metrics: name at least one metric"),
        ({"bootstrap": 200.5}, "--bootstrap 200.5: give a whole number"),
        ({"bootstrap": "1000"}, "--bootstrap '1000': give a whole number"),
        ({"seed": True}, "--stats-seed True: give a whole number"),
        ({"confidence": "0.9"}, "--confidence '0.9': give float"),
        ({"plugins": "x"}, "plugins: give an asrfair Plugins set"),
    ],
)
def test_score_arguments_of_the_wrong_type_are_named(kwargs: dict[str, Any], message: str) -> None:
    frame = pd.read_csv(TRANSCRIPTS)
    with pytest.raises(AsrfairError, match=message.replace("(", r"\(").replace("*", r"\*")):
        asrfair.score(frame, **{"permutations": 0, **kwargs})


@pytest.mark.parametrize("data", [None, 123, {"ref": ["a"]}, ""])
def test_score_data_that_is_no_table_is_named(data: Any) -> None:
    with pytest.raises(AsrfairError, match=r"data: give a pandas DataFrame, a datasets\.Dataset"):
        asrfair.score(data)


def test_a_table_with_no_rows_or_a_repeated_column_is_refused() -> None:
    frame = pd.read_csv(TRANSCRIPTS)
    with pytest.raises(AsrfairError, match="DataFrame: no rows to score"):
        asrfair.score(frame.iloc[:0])
    twice = pd.concat([frame, frame[["gender"]]], axis=1)
    with pytest.raises(AsrfairError, match="column 'gender' appears twice"):
        asrfair.score(twice, groups="gender")


def test_a_missing_reference_is_counted_in_the_warnings() -> None:
    frame = pd.read_csv(TRANSCRIPTS)
    frame.loc[[0, 1], "ref"] = np.nan
    result = asrfair.score(frame, bootstrap=0, permutations=0)
    assert any(
        w.startswith("2 of 240 rows have no reference (ref is null)") for w in result.warnings
    )


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ("gender*gender", "names a column twice"),
        ("hyp*gender", "'hyp' is a transcript, not a group"),
    ],
)
def test_groupings_that_cannot_mean_anything_are_refused(groups: str, message: str) -> None:
    result = runner.invoke(cli.app, ["score", str(TRANSCRIPTS), "--groups", groups, *FAST])
    assert result.exit_code == 2 and message in result.stderr


def test_the_same_intersection_written_twice_is_one_grouping() -> None:
    from asrfair.groups import parse_groupings

    assert parse_groupings(["gender,accents", "accents*gender", "gender*accents"]) == [
        "gender",
        "accents",
        "accents*gender",
    ]


# --- audit options from a config file -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bootstrap = 500\n[statistics]\nbootstrap = 1000\n", "bootstrap is set twice"),
        ("workers = -1\n", "--workers -1: use 0 or more"),
        ("batch_seconds = nan\n", "--batch-seconds nan: give a finite number"),
        ("batch_seconds = 0\n", "--batch-seconds 0.0: use 1 or more"),
        ("barrier_minutes = -1\n", "--barrier-minutes -1.0: use 0.1 or more"),
        ("device = 'tpu'\n", "--device tpu: use auto, cpu, cuda or cuda:N"),
        ("[train]\nlearning_rate = -1.0\n", "learning_rate must be positive, not -1.0"),
        ("[train]\nlayerdrop = 1.5\n", "layerdrop must be in [0, 1), not 1.5"),
    ],
)
def test_a_config_file_keeps_the_command_lines_limits(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "audit.toml"
    path.write_text(text)
    result = runner.invoke(cli.app, ["audit", "--config", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_config_folder_and_a_study_folder_are_named(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["audit", "--config", str(tmp_path)])
    assert result.exit_code == 2 and "a folder; give the TOML file" in result.stderr
    result = runner.invoke(cli.app, ["study", str(tmp_path)])
    assert result.exit_code == 2 and "a folder; give the study file" in result.stderr


def test_a_grouping_with_one_speaker_per_stratum_fails_before_the_run_folder(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    args = ["audit", "--no-train", "--groups", "gender*speaker", "--out", str(out), *FAST]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2
    assert "the speaker split left no test speakers" in result.stderr
    assert not out.exists()


# --- stored reports edited by hand --------------------------------------------------------------
MUTATIONS = {
    "overall is a list": lambda d: d.__setitem__("overall", []),
    "an interval of one end": lambda d: d["overall"].__setitem__("wer_ci", [0.1]),
    "an interval as text": lambda d: d["overall"].__setitem__("wer_ci", "x"),
    "a count as text": lambda d: d["overall"].__setitem__("errors", "x"),
    "null warnings": lambda d: d["overall"].__setitem__("warnings", None),
    "a group without its name": lambda d: d["groups"]["gender"][0].pop("group"),
    "a gap without b": lambda d: d["gaps"]["gender"][0].pop("b"),
    "no model": lambda d: d["run"].__setitem__("model", None),
    "config as text": lambda d: d.__setitem__("config", "x"),
    "a NaN rate": lambda d: d["overall"].__setitem__("wer", float("nan")),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("fmt", ["rich", "md"])
def test_a_damaged_stored_report_is_one_line(tmp_path: Path, mutation: str, fmt: str) -> None:
    data = copy.deepcopy(json.loads(STORED.read_text(encoding="utf-8")))
    MUTATIONS[mutation](data)
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    result = runner.invoke(cli.app, ["report", str(tmp_path), "--format", fmt])
    assert result.exit_code == 2, result.output
    assert str(tmp_path) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_dataset_dicts_split_names_are_part_of_its_saved_name(tmp_path: Path) -> None:
    """{train: X, test: Y} and {test: X, train: Y} hold the same parts under other names: an
    audit of one must never read the other's saved copy."""
    import datasets

    from asrfair.hfdata import saved_for_audit

    x = datasets.Dataset.from_dict({"sentence": ["a"]})
    y = datasets.Dataset.from_dict({"sentence": ["b"]})
    one = saved_for_audit(datasets.DatasetDict({"train": x, "test": y}), tmp_path)
    other = saved_for_audit(datasets.DatasetDict({"test": x, "train": y}), tmp_path)
    assert one != other
    assert datasets.load_from_disk(one[3:])["test"]["sentence"] == ["b"]
    assert saved_for_audit(datasets.DatasetDict({"train": x, "test": y}), tmp_path) == one


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        ("missing/plot.png", "there is no folder"),
        ("report.png", "is also --out; give the report and the plot two files"),
    ],
)
def test_a_plot_that_cannot_be_written_fails_before_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plot: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["score", str(TRANSCRIPTS), "--groups", "gender", "--out", "report.png", *FAST]
    result = runner.invoke(cli.app, [*args, "--plot", plot])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "report.png").exists()


def test_eval_steps_without_training_is_refused(tmp_path: Path) -> None:
    args = ["audit", "--no-train", "--eval-steps", "5", "--out", str(tmp_path / "r"), *FAST]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2
    assert "--eval-steps 5: evaluates during training, and --no-train" in result.stderr
