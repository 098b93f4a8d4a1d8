"""The Python API as a notebook user calls it: one import, one call, DataFrames back."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

import asrfair
from asrfair.cli import app
from asrfair.errors import AsrfairError
from conftest import gender_rows, write_transcripts
from test_cli import runner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = pd.DataFrame(gender_rows())
    # A notebook's own column names, and a row whose group is missing (NaN, not "nan").
    rows = rows.rename(columns={"ref": "reference", "hyp": "prediction", "speaker": "client"})
    rows.loc[0, "gender"] = np.nan
    return rows


def _scored(frame: pd.DataFrame) -> asrfair.ScoreResult:
    names = {"ref": "reference", "hyp": "prediction", "speaker": "client"}
    return asrfair.score(frame, groups=["gender"], bootstrap=500, **names)


def test_one_call_scores_a_dataframe(frame: pd.DataFrame) -> None:
    result = _scored(frame)
    by_group = result.by_group
    assert list(by_group["group"]) == ["female_feminine", "male_masculine"]
    assert {"grouping", "n_speakers", "wer", "wer_low", "wer_high", "cer_low"} <= set(by_group)
    female = by_group.set_index("group").loc["female_feminine"]
    assert female["wer_low"] < female["wer"] < female["wer_high"]
    assert by_group["n_utterances"].sum() == len(frame) - 1  # the row without a gender
    assert result.overall["n_utterances"] == len(frame)
    gaps = result.gaps
    assert set(gaps["metric"]) == {"wer", "cer"} and (gaps["p_value"] <= 1).all()
    assert result.method["interval"] and any("gender" in w for w in result.warnings)


def test_the_api_and_the_cli_print_the_same_report(tmp_path: Path) -> None:
    from asrfair.cli import app

    csv = write_transcripts(tmp_path / "t.csv", gender_rows())
    result = asrfair.score(csv, groups=["gender"], bootstrap=500)
    args = ["score", str(csv), "--groups", "gender", "--bootstrap", "500", "-f"]
    exports = {
        "json": result.to_json(),
        "md": result.to_markdown(),
        "latex": result.to_latex(),
        "csv": result.to_csv(),
        "html": result.to_html(),
    }
    for fmt, text in exports.items():
        printed = runner.invoke(app, [*args, fmt])
        assert printed.exit_code == 0, printed.output
        assert printed.stdout == text, fmt


def test_a_notebook_shows_tables(frame: pd.DataFrame) -> None:
    result = _scored(frame)
    html = result._repr_html_()
    assert "<table" in html and "female_feminine" in html and "speakers" in html
    assert result.__rich__() is not None


def test_bad_columns_name_the_dataframe(frame: pd.DataFrame) -> None:
    with pytest.raises(AsrfairError, match=r"DataFrame: no column 'ref' .*columns are: "):
        asrfair.score(frame)


def test_compare_and_load_run_from_python(tmp_path: Path) -> None:
    rows = pd.DataFrame(gender_rows())
    better = rows.assign(hyp=rows["ref"])  # system B gets every utterance right
    result = asrfair.compare(rows, better, groups=["gender"], bootstrap=500)
    female = result.by_group.set_index("group").loc["female_feminine"]
    assert female["wer_diff"] < 0 and female["wer_diff_high"] < 0
    with pytest.raises(AsrfairError, match="DataFrame has no id column"):
        asrfair.compare(rows.drop(columns="id"), better.drop(columns="id"))
    run = tmp_path / "run"
    run.mkdir()
    scored = asrfair.score(rows, groups=["gender"], bootstrap=200)
    (run / "metrics.json").write_text(scored.to_json())
    assert asrfair.load_run(run).by_group.equals(scored.by_group)


def test_groups_as_text_and_every_warning_surfaces() -> None:
    rows = pd.DataFrame(gender_rows())  # 6 speakers per gender: fewer than --min-speakers 10
    result = asrfair.score(rows, groups="gender,age", bootstrap=200)
    assert set(result.by_group["grouping"]) == {"gender", "age"}
    assert "gender=female_feminine: only 6 speaker(s) (< 10): interval unreliable" in (
        result.warnings
    )


def test_a_study_folder_reads_as_tidy_frames_one_row_per_run() -> None:
    study = asrfair.load_run(ROOT / "examples" / "notebook_study")
    stored = json.loads((ROOT / "examples" / "notebook_study" / "study.json").read_text())
    names = [run["name"] for run in stored["runs"]]
    assert study.overall["run"].tolist() == names
    first = stored["runs"][0]
    assert study.overall.loc[0, "wer"] == first["overall"]["wer"]
    assert study.overall.loc[0, "wer_high"] == first["overall"]["wer_ci"][1]
    female = study.by_group[
        (study.by_group["run"] == names[0]) & (study.by_group["group"] == "female")
    ]
    expected = next(g for g in first["groups"]["gender"] if g["group"] == "female")
    assert female["wer"].item() == expected["wer"]
    assert len(study.comparisons) == sum(
        1 + sum(len(v) for v in c["groups"].values()) for c in stored["comparisons"]
    )


# --- Hugging Face datasets -----------------------------------------------------------------------
def hf_predictions() -> datasets.Dataset:
    """Predictions as an HF user keeps them: LibriSpeech's names (text, speaker_id, an int),
    a ClassLabel gender, and the model's output in a column of its own."""
    rows = pd.DataFrame(gender_rows())
    genders = datasets.ClassLabel(names=["male_masculine", "female_feminine"])
    ds = datasets.Dataset.from_dict(
        {
            "id": rows["id"].tolist(),
            "text": rows["ref"].tolist(),
            "prediction": rows["hyp"].tolist(),
            "speaker_id": [int(s.removeprefix("spk")) for s in rows["speaker"]],
            "gender": genders.str2int(rows["gender"].tolist()),
        }
    )
    return ds.cast_column("gender", genders)


def test_a_dataset_of_predictions_is_scored_over_its_speakers(tmp_path: Path) -> None:
    ds = hf_predictions()
    result = asrfair.score(ds, hyp="prediction", groups="gender", bootstrap=300)
    by_group = result.by_group.set_index("group")
    assert by_group["n_speakers"].to_dict() == {"female_feminine": 6, "male_masculine": 6}
    assert result.method["resampling_unit"] == "speaker"
    assert result.report.data["config"]["input"] == "datasets.Dataset"
    # the same numbers as the DataFrame it came from, through the CLI from a saved folder
    frame = pd.DataFrame(gender_rows())
    expected = asrfair.score(frame, groups="gender", bootstrap=300).by_group
    pd.testing.assert_frame_equal(result.by_group, expected)
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "preds"))
    args = ["score", f"hf:{tmp_path / 'preds'}@test", "--hyp-col", "prediction"]
    cli = runner.invoke(app, [*args, "--groups", "gender", "--bootstrap", "300", "-f", "json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["groups"] == result.report.data["groups"]


def test_a_datasetdict_is_read_one_split_at_a_time(tmp_path: Path) -> None:
    ds = hf_predictions()
    both = datasets.DatasetDict({"train": ds.select(range(10)), "test": ds})
    with pytest.raises(AsrfairError) as err:
        asrfair.score(both, hyp="prediction")
    assert str(err.value) == (
        "datasets.DatasetDict: a DatasetDict with splits train, test; pick one with split='NAME'"
    )
    with pytest.raises(AsrfairError, match="no split 'dev'; splits are: train, test"):
        asrfair.score(both, hyp="prediction", split="dev")
    result = asrfair.score(both, hyp="prediction", split="train", bootstrap=0)
    assert result.overall["n_utterances"] == 10 and result.overall["n_speakers"] == 2
    assert result.report.data["config"]["split"] == "train"
    both.save_to_disk(str(tmp_path / "preds"))
    cli = runner.invoke(app, ["score", str(tmp_path / "preds"), "--hyp-col", "prediction"])
    assert cli.exit_code == 2
    assert f"pick one with hf:{tmp_path / 'preds'}@SPLIT" in cli.stderr
    # B has one more error on one utterance: compare pairs the two datasets by id
    worse = ds.map(lambda row, i: {"prediction": "x" if i == 0 else row["prediction"]},
                   with_indices=True)  # fmt: skip
    paired = asrfair.compare(ds, worse, hyp="prediction", groups="gender", bootstrap=200)
    assert paired.overall["wer_diff"] > 0 and paired.overall["n_speakers"] == 12


def test_named_columns_win_over_a_datasets_own_names() -> None:
    ds = hf_predictions().add_column("sentence", ["un"] * 60).add_column("who", ["a"] * 60)
    result = asrfair.score(ds, ref="text", hyp="prediction", speaker="who", bootstrap=0)
    assert result.overall["n_speakers"] == 1 and result.overall["wer"] < 1
    # without ref=, "sentence" comes before "text"
    assert asrfair.score(ds, hyp="prediction", bootstrap=0).overall["wer"] > 1


def test_unknown_speakers_head_every_export_of_score_and_compare() -> None:
    ds = hf_predictions().remove_columns("speaker_id")
    result = asrfair.score(ds, hyp="prediction", groups="gender", bootstrap=0)
    assert result.method["speakers"] == "unknown"
    title = "ASR fairness audit: datasets.Dataset"
    headline = (
        "> **Speakers unknown: the data has no speaker column, so every utterance counts as its "
        "own speaker. Intervals and gap tests then treat utterances as independent and are too "
        "narrow if speakers recur; name the speaker column (--columns speaker=COLUMN for a "
        "dataset, --speaker-col for transcripts).**"
    )
    assert result.to_markdown().splitlines()[:3] == [f"# {title}", "", headline]
    latex = result.to_latex().splitlines()
    assert latex[1].startswith("% Speakers unknown: the data has no speaker column")
    assert all("Speakers unknown" in line for line in latex if line.startswith("\\caption"))
    csv = pd.DataFrame(gender_rows()).drop(columns="speaker").to_csv()
    rich = runner.invoke(app, ["score", "-", "--groups", "gender", "--bootstrap", "0"], input=csv)
    assert rich.exit_code == 0, rich.output
    assert rich.stdout.splitlines()[1].startswith("Speakers unknown: the data has no speaker")
    paired = asrfair.compare(ds, ds, hyp="prediction", bootstrap=0)
    assert paired.method["speakers"] == "unknown"
    assert paired.to_markdown().splitlines()[2].startswith("> **Speakers unknown")
    # an audit corpus without speakers gives each utterance its own: speaker == id
    stand_ins = pd.DataFrame(gender_rows()).pipe(lambda f: f.assign(speaker=f["id"]))
    assert asrfair.score(stand_ins, bootstrap=0).method["speakers"] == "unknown"
    # with speakers there is neither the flag nor the headline
    known = asrfair.score(hf_predictions(), hyp="prediction", bootstrap=0)
    assert "speakers" not in known.method and "Speakers unknown" not in known.to_markdown()
