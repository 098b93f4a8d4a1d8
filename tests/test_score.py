from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from asrfair import cli
from asrfair.errors import AsrfairError
from asrfair.scoring import CHAR_COUNTS, WORD_COUNTS, edit_counts, score, utterance_counts
from asrfair.text import identity
from conftest import LVC, gender_rows, write_transcripts

runner = CliRunner()

# Segments where sclite credits a word fragment ("a-") that plain edit distance cannot.
FRAGMENT_SEGMENTS = {"2347-b-008", "2347-b-010"}


def test_edit_counts_classifies_operations() -> None:
    assert edit_counts(["a", "b", "c"], ["a", "x", "c", "d"]) == (1, 0, 1, 3)
    assert edit_counts(["a", "b", "c"], ["a"]) == (0, 2, 0, 3)


def test_empty_reference_counts_hypothesis_as_insertions() -> None:
    words = utterance_counts("", "they said")
    assert words[:4] == (0, 0, 2, 0)
    assert words[4:] == (0, 0, 9, 0)  # nine characters inserted, none in the reference


def test_characters_include_single_spaces() -> None:
    assert utterance_counts("ab  cd", "ab cd")[4:] == (0, 0, 0, 5)


@pytest.fixture(scope="module")
def lvc_table() -> pd.DataFrame:
    raw = pd.read_csv(LVC, dtype=str, keep_default_na=False)
    table = score(raw[["id", "speaker", "ref", "hyp"]], identity, groupings=["speaker"])
    merged = table.frame.merge(raw[["id", "S", "D", "I"]], on="id")
    assert len(merged) == len(raw) == 108
    return merged


def test_conformance_every_segment_matches_sclite(lvc_table: pd.DataFrame) -> None:
    ours = lvc_table["w_sub"] + lvc_table["w_del"] + lvc_table["w_ins"]
    sclite = lvc_table[["S", "D", "I"]].astype(int).sum(axis=1)
    differs = set(lvc_table["id"][ours != sclite])
    assert differs == FRAGMENT_SEGMENTS
    for segment in FRAGMENT_SEGMENTS:
        row = lvc_table[lvc_table["id"] == segment]
        assert int((ours - sclite)[row.index].iloc[0]) == 1


def test_conformance_totals(lvc_table: pd.DataFrame) -> None:
    errors = int((lvc_table["w_sub"] + lvc_table["w_del"] + lvc_table["w_ins"]).sum())
    assert (errors, int(lvc_table["w_n"].sum())) == (888, 1682)


@pytest.mark.parametrize(
    ("speaker", "words", "sclite_err_pct"),
    [("2347-a", 253, 50.6), ("2347-b", 642, 43.1), ("3129-a", 188, 89.4), ("3129-b", 599, 50.9)],
)
def test_conformance_per_speaker(
    lvc_table: pd.DataFrame, speaker: str, words: int, sclite_err_pct: float
) -> None:
    rows = lvc_table[lvc_table["speaker"] == speaker]
    errors = int((rows["w_sub"] + rows["w_del"] + rows["w_ins"]).sum())
    fragments = int(rows["id"].isin(FRAGMENT_SEGMENTS).sum())
    assert int(rows["w_n"].sum()) == words
    # sclite's figure is rounded to 0.1%; ours differs only by the fragment credits.
    assert round(100 * (errors - fragments) / words, 1) == sclite_err_pct
    if speaker == "2347-b":
        assert (errors, words) == (279, 642)


def test_conformance_inter_segment_gap_has_insertions_only(lvc_table: pd.DataFrame) -> None:
    gap = lvc_table[lvc_table["speaker"] == "inter_segment_gap"]
    assert int(gap["w_n"].sum()) == 0
    assert int(gap["w_ins"].sum()) == 8
    assert int((gap["w_sub"] + gap["w_del"]).sum()) == 0


# jiwer, a second implementation of the counting, beside sclite's own figures above. An
# alignment of equal cost may call a pair of errors S+I or D+I... differently (tie-breaking),
# so per utterance S+D+I and N must agree, not necessarily the S/D/I split. jiwer aligns with
# rapidfuzz as asrfair does: it checks tokenisation and bookkeeping, sclite checks the aligner.
@pytest.mark.parametrize(
    ("process", "counts"),
    [("process_words", WORD_COUNTS), ("process_characters", CHAR_COUNTS)],
)
def test_conformance_with_jiwer(
    lvc_table: pd.DataFrame, process: str, counts: tuple[str, ...]
) -> None:
    jiwer = pytest.importorskip("jiwer")  # the test extra installs it
    sub, dele, ins, n = counts
    for row in lvc_table.itertuples():
        out = getattr(jiwer, process)(row.ref, row.hyp)
        theirs = (
            out.substitutions + out.deletions + out.insertions,
            out.hits + out.substitutions + out.deletions,
        )
        ours = (getattr(row, sub) + getattr(row, dele) + getattr(row, ins), getattr(row, n))
        assert ours == theirs, row.id
    corpus = getattr(jiwer, process)(list(lvc_table["ref"]), list(lvc_table["hyp"]))
    errors = corpus.substitutions + corpus.deletions + corpus.insertions
    assert errors == int(lvc_table[[sub, dele, ins]].to_numpy().sum())
    assert corpus.hits + corpus.substitutions + corpus.deletions == int(lvc_table[n].sum())
    if process == "process_words":  # sclite's totals too (test_conformance_totals)
        assert (errors, int(lvc_table[n].sum())) == (888, 1682)


def test_grouping_specs_are_parsed_in_one_place() -> None:
    from asrfair.groups import all_columns, parse_groupings

    assert parse_groupings("gender, gender * age ,gender,") == ["gender", "gender*age"]
    assert parse_groupings(["accents", "gender*age"]) == ["accents", "gender*age"]
    assert all_columns(["gender", "gender*age", "age*accents"]) == ["gender", "age", "accents"]
    with pytest.raises(AsrfairError, match=r"--groups: 'gender\*' has an empty column name"):
        parse_groupings("gender*")


def test_a_typo_in_an_intersection_is_one_line_from_score(tmp_path: Path) -> None:
    path = write_transcripts(tmp_path / "t.csv", gender_rows())
    result = runner.invoke(cli.app, ["score", str(path), "--groups", "gender**age"])
    assert result.exit_code == 2
    assert "'gender**age' has an empty column name" in result.stderr
