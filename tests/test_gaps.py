"""Gaps through the CLI: --gaps modes, --p-adjust families, warnings that name what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asrfair.cli import app
from conftest import gender_rows, write_transcripts
from test_cli import fail, run_json, runner


def accent_rows(groups: int, speakers: int, seed: int = 0) -> list[dict[str, object]]:
    """``groups`` accents of ``speakers`` speakers each; accent g's speakers err more with g."""
    rng = np.random.default_rng(seed)
    ref = "un deux trois quatre cinq six sept huit neuf dix"
    rows: list[dict[str, object]] = []
    for g in range(groups):
        for s in range(speakers):
            for u in range(3):
                wrong = min(10, rng.binomial(10, 0.05 + 0.4 * g / max(groups - 1, 1)))
                rows.append(
                    {
                        "id": f"g{g}-s{s}-u{u}",
                        "speaker": f"g{g}-s{s}",
                        "accent": f"acc{g:03d}",
                        "ref": ref,
                        "hyp": " ".join(["x"] * wrong + ref.split()[wrong:]),
                    }
                )
    return rows


@pytest.fixture
def five_accents(tmp_path: Path) -> Path:
    return write_transcripts(tmp_path / "accents.csv", accent_rows(5, 6))


def _wer_rows(data: dict[str, Any], grouping: str = "accent") -> list[dict[str, Any]]:
    return [g for g in data["gaps"][grouping] if g["metric"] == "wer"]


def test_auto_summarises_many_groups_against_the_rest(five_accents: Path) -> None:
    data = run_json("score", str(five_accents), "--groups", "accent", "--permutations", "500")
    rows = _wer_rows(data)
    assert [g["kind"] for g in rows] == ["vs-rest"] * 5 + ["largest"]
    first = rows[0]
    assert (first["a"], first["b"]) == ("acc000", "rest of acc000")
    assert (first["n_speakers_a"], first["n_speakers_b"]) == (6, 24)
    assert first["diff"] < 0 and first["p_value"] < 0.05  # the best accent, clearly
    largest = rows[-1]
    assert (largest["a"], largest["b"]) == ("acc004", "acc000")
    assert largest["diff_ci"][0] > 0


def test_pairs_best_and_reference_modes(five_accents: Path) -> None:
    base = ("score", str(five_accents), "--groups", "accent", "--permutations", "200")
    pairs = _wer_rows(run_json(*base, "--gaps", "pairs"))
    assert len([g for g in pairs if g["kind"] == "pair"]) == 10
    best = _wer_rows(run_json(*base, "--gaps", "vs-best"))
    assert {g["b"] for g in best if g["kind"] == "vs-best"} == {"acc000"}
    ref = _wer_rows(run_json(*base, "--gaps", "ref:acc002"))
    assert [g["a"] for g in ref if g["kind"] == "vs-ref"] == [
        "acc000",
        "acc001",
        "acc003",
        "acc004",
    ]
    assert run_json(*base, "--gaps", "none")["gaps"]["accent"] == []
    line = fail(*base, "--gaps", "ref:acc999")
    assert "--gaps ref:acc999" in line and "acc000, acc001" in line


def test_p_adjust_families(five_accents: Path) -> None:
    base = ("score", str(five_accents), "--groups", "accent", "--permutations", "300")
    per_metric = run_json(*base)
    everything = run_json(*base, "--p-adjust", "holm-all")
    raw = run_json(*base, "--p-adjust", "none")
    tested = [g for g in raw["gaps"]["accent"] if g["p_value"] is not None]
    assert all(g["p_adjusted"] == g["p_value"] and g["p_holm"] is None for g in tested)
    assert len(tested) == 10  # 5 vs-rest rows for WER and for CER; largest has no test
    wer_p = sorted(g["p_value"] for g in _wer_rows(raw) if g["p_value"] is not None)
    smallest_wer = min(
        (g for g in _wer_rows(per_metric) if g["p_value"] is not None),
        key=lambda g: g["p_value"],
    )
    assert smallest_wer["p_adjusted"] == pytest.approx(min(1.0, 5 * wer_p[0]))  # family of 5
    smallest_all = min(
        (g for g in everything["gaps"]["accent"] if g["p_value"] is not None),
        key=lambda g: g["p_value"],
    )
    assert smallest_all["p_adjusted"] == pytest.approx(min(1.0, 10 * smallest_all["p_value"]))
    assert "every gap p-value" in everything["method"]["p_adjust_family"]


def test_three_speakers_a_side_cannot_reach_significance_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    path = write_transcripts(tmp_path / "t.csv", gender_rows(n_speakers=6))
    data = run_json("score", str(path), "--groups", "gender")
    gap = data["gaps"]["gender"][0]
    assert gap["p_exact"] is True and gap["p_value"] == pytest.approx(0.1)  # 2 of 20
    assert "no gap can be significant" in data["gap_notes"]["gender"][0]
    md = runner.invoke(app, ["score", str(path), "--groups", "gender", "--format", "md"]).stdout
    assert "no gap can be significant" in md


def test_blank_speaker_ids_are_missing_not_one_speaker(tmp_path: Path) -> None:
    rows = gender_rows()
    for row in rows[:10]:
        row["speaker"] = " "
    data = run_json("score", str(write_transcripts(tmp_path / "t.csv", rows)), "--groups", "gender")
    assert any("10 row(s) have a blank speaker id" in w for w in data["warnings"])
    # 10 blank rows of 2 speakers become 10 units; nothing is pooled across genders.
    assert data["overall"]["n_speakers"] == 10 + 10
    assert not any("more than one gender group" in w for w in data["warnings"])


def test_a_speaker_in_two_groups_is_named(tmp_path: Path) -> None:
    rows = gender_rows()
    rows[0]["gender"] = "female_feminine"  # spk0 is male in its other rows
    data = run_json("score", str(write_transcripts(tmp_path / "t.csv", rows)), "--groups", "gender")
    assert any("1 speaker(s) in more than one gender group (spk0)" in w for w in data["warnings"])


def test_three_hundred_groups_keep_the_tables_readable(tmp_path: Path) -> None:
    path = write_transcripts(tmp_path / "many.csv", accent_rows(300, 2))
    args = ("score", str(path), "--groups", "accent", "--permutations", "100")
    data = run_json(*args)
    assert len(_wer_rows(data)) == 301  # every group against the rest, and worst - best
    md = runner.invoke(app, [*args, "--format", "md"]).stdout
    gap_table = md.split("## Gaps by accent")[1]
    assert gap_table.count("\n| ") == 1 + 20  # header and 20 rows
    assert "showing 20 of 602 gaps" in gap_table
    assert "largest: acc" in gap_table.split("\n| ")[2]  # the largest gap first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bootstrap", "10"), "--bootstrap 10: use 199 to 1,000,000 draws"),
        (("--bootstrap", "-5"), "--bootstrap -5: use 199"),
        (("--seed", "-1"), "--seed -1: use a seed of 0 or more"),
        (("--confidence", "1"), "--confidence 1.0: use a level from 0.5 to 0.999"),
        (("--confidence", "nan"), "--confidence nan"),
        (("--min-speakers", "0"), "--min-speakers 0: use 1 or more"),
        (("--permutations", "-1"), "--permutations -1: use 0 to"),
        (("--interval", "wald"), "--interval 'wald': use one of auto, bootstrap-t"),
    ],
)
def test_bad_statistics_options_get_one_line(
    five_accents: Path, args: tuple[str, ...], message: str
) -> None:
    assert message in fail("score", str(five_accents), "--groups", "accent", *args)


def test_out_must_be_a_new_file(five_accents: Path, tmp_path: Path) -> None:
    base = ("score", str(five_accents), "--groups", "accent")
    assert "is a folder" in fail(*base, "--out", str(tmp_path))
    assert "is an input file" in fail(*base, "--format", "csv", "--out", str(five_accents))
    assert five_accents.read_text().startswith("id,")  # the input is untouched


def test_a_group_without_reference_words_is_named_not_silently_left_out(tmp_path: Path) -> None:
    rows = gender_rows()
    for row in rows:
        if row["gender"] == "male_masculine":
            row["ref"] = ""
    data = run_json("score", str(write_transcripts(tmp_path / "t.csv", rows)), "--groups", "gender")
    assert data["gaps"]["gender"] == []
    assert "no reference words, so in no gap: male_masculine" in data["gap_notes"]["gender"]


def test_a_gap_against_an_error_free_group_says_its_rate_is_taken_as_known(
    tmp_path: Path,
) -> None:
    rows = gender_rows()
    for row in rows:
        if row["gender"] == "male_masculine":
            row["hyp"] = row["ref"]
    data = run_json("score", str(write_transcripts(tmp_path / "t.csv", rows)), "--groups", "gender")
    gap = data["gaps"]["gender"][0]
    assert "male_masculine has no errors: the interval takes its rate as known" in gap["warnings"]


def test_repeated_groupings_are_scored_once(five_accents: Path) -> None:
    data = run_json("score", str(five_accents), "--groups", "accent,accent", "--gaps", "none")
    assert list(data["groups"]) == ["accent"]


def test_compare_gives_a_one_speaker_group_no_interval(tmp_path: Path) -> None:
    rows = gender_rows()
    rows = [r for r in rows if r["gender"] == "female_feminine" or r["speaker"] == "spk0"]
    better = [{**r, "hyp": r["ref"]} for r in rows]
    a = write_transcripts(tmp_path / "a.csv", rows)
    b = write_transcripts(tmp_path / "b.csv", better)
    data = run_json("compare", str(a), str(b), "--groups", "gender")
    male = next(e for e in data["groups"]["gender"] if e["group"] == "male_masculine")
    assert male["n_speakers"] == 1
    assert male["wer"]["diff_ci"] is None and male["wer"]["p_b_better"] is None
    assert "wer: 1 speaker(s): no interval with fewer than 2" in male["warnings"]


def test_error_messages_print_brackets_literally(five_accents: Path) -> None:
    line = fail("score", str(five_accents), "--groups", "[red]g")
    assert "no column '[red]g'" in line


def test_compare_names_a_missing_path() -> None:
    assert "nope/a: no such file or run folder" in fail("compare", "nope/a", "nope/b")
