from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from asrfair import __version__
from asrfair.cli import app
from conftest import LVC, gender_rows, write_transcripts

runner = CliRunner()
RATE_FIELDS = {
    "wer",
    "wer_ci",
    "cer",
    "cer_ci",
    "errors",
    "n_ref_words",
    "n_utterances",
    "n_speakers",
    "warnings",
}


def run_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def fail(*args: str) -> str:
    """Run a command that must fail as bad input: exit 2 and a single line on stderr."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def gender_csv(tmp_path: Path) -> Path:
    return write_transcripts(tmp_path / "t.csv", gender_rows())


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"asrfair {__version__}"


def test_conformance_through_the_cli() -> None:
    data = run_json("score", str(LVC), "--groups", "speaker", "--bootstrap", "200")
    assert (data["overall"]["errors"], data["overall"]["n_ref_words"]) == (888, 1682)
    by_speaker = {e["group"]: e for e in data["groups"]["speaker"]}
    assert (by_speaker["2347-b"]["errors"], by_speaker["2347-b"]["n_ref_words"]) == (279, 642)
    assert by_speaker["2347-b"]["wer"] == pytest.approx(279 / 642)
    gap = by_speaker["inter_segment_gap"]
    assert gap["wer"] is None and gap["wer_ci"] is None and gap["errors"] == 8
    assert any("wer undefined (8 errors)" in w for w in gap["warnings"])
    assert all("inter_segment_gap" not in (g["a"], g["b"]) for g in data["gaps"]["speaker"])


def test_json_contract(gender_csv: Path) -> None:
    data = run_json("score", str(gender_csv), "--groups", "gender", "--bootstrap", "500")
    assert set(data) >= {"overall", "groups", "gaps", "method"}
    assert set(data["overall"]) >= RATE_FIELDS
    entries = data["groups"]["gender"]
    assert [e["group"] for e in entries] == ["female_feminine", "male_masculine"]
    for entry in entries:
        assert set(entry) >= RATE_FIELDS
        assert 0 <= entry["wer_ci"][0] <= entry["wer"] <= entry["wer_ci"][1] <= 1
        assert entry["n_speakers"] == 6
        # The fixture gives every speaker of a gender the same error counts.
        assert entry["warnings"] == [
            "only 6 speaker(s) (< 10): interval unreliable",
            "wer: speakers with equal rates: linearised t interval on the token variance",
            "cer: speakers with equal rates: linearised t interval on the token variance",
        ]
    female, male = entries
    assert female["wer"] == pytest.approx(female["errors"] / female["n_ref_words"])
    assert female["wer"] > male["wer"]
    gap = data["gaps"]["gender"][0]
    assert (gap["a"], gap["b"], gap["metric"]) == ("female_feminine", "male_masculine", "wer")
    assert gap["diff"] == pytest.approx(female["wer"] - male["wer"])
    assert gap["diff_ci"][0] > 0
    assert gap["p_value"] < 0.05 and gap["p_holm"] == gap["p_adjusted"] == gap["p_value"]
    assert gap["kind"] == "pair" and (gap["n_speakers_a"], gap["n_speakers_b"]) == (6, 6)
    assert gap["warnings"][0] == "only 6 speaker(s) (< 10): interval unreliable"  # both groups'
    # 6 vs 6 speakers: 924 relabelings, all enumerated; the smallest p is 2/924 (the swap).
    assert gap["p_exact"] is True and gap["p_min"] == pytest.approx(2 / 924)
    assert gap["p_permutation"] * 924 == pytest.approx(round(gap["p_permutation"] * 924))
    # Significant only when the permutation test and the interval's own test both say so.
    assert gap["p_value"] == max(gap["p_permutation"], gap["p_interval"])
    method = data["method"]
    assert method["resampling_unit"] == "speaker"
    assert (method["draws"], method["seed"], method["interval"]) == (500, 0, "auto")
    assert method["p_adjust"] == "holm" and "metric" in method["p_adjust_family"]
    # The linearised t interval draws nothing, and says so.
    args = ("score", str(gender_csv), "--groups", "gender", "--bootstrap", "500")
    linear = run_json(*args, "--interval", "t")["method"]
    assert (linear["draws"], linear["interval"], linear["bootstrap"]) == (0, "t", "none")


def test_same_seed_same_numbers_other_seed_other_draws(gender_csv: Path) -> None:
    args = ("score", str(gender_csv), "--groups", "gender", "--bootstrap", "300")
    boot = (*args, "--interval", "bca")
    first, again = run_json(*boot), run_json(*boot)
    assert first == again
    assert first["method"]["interval"] == "bca" and first["method"]["draws"] == 300
    # The t interval uses no random draws; Monte-Carlo permutation p-values move with the seed
    # (6 speakers a side have 924 relabelings: ask for fewer, so they are drawn, not listed).
    ref = "un deux trois quatre cinq six sept huit"
    wrong = np.random.default_rng(4).integers(0, 5, size=(12, 5))
    rows = [  # speakers whose error counts vary, in two groups, no real gap
        {
            "id": f"s{s}-u{u}",
            "speaker": f"spk{s}",
            "half": "ab"[s % 2],
            "ref": ref,
            "hyp": " ".join(["x"] * wrong[s, u] + ref.split()[wrong[s, u] :]),
        }
        for s in range(12)
        for u in range(5)
    ]
    noisy = write_transcripts(gender_csv.parent / "noisy.csv", rows)
    mc = ("score", str(noisy), "--groups", "half", "--permutations", "200", "--interval", "t")
    t_first, t_other = run_json(*mc), run_json(*mc, "--seed", "9")
    assert t_first["overall"]["wer_ci"] == t_other["overall"]["wer_ci"]
    gap_first, gap_other = t_first["gaps"]["half"][0], t_other["gaps"]["half"][0]
    assert gap_first["p_exact"] is False and 0.01 < gap_first["p_permutation"] < 1
    assert gap_first["p_permutation"] != gap_other["p_permutation"]


def test_intersectional_groups(gender_csv: Path) -> None:
    data = run_json("score", str(gender_csv), "--groups", "gender*age,age", "--bootstrap", "200")
    names = [e["group"] for e in data["groups"]["gender*age"]]
    assert names == [
        "female_feminine*fifties",
        "female_feminine*twenties",
        "male_masculine*fifties",
        "male_masculine*twenties",
    ]
    assert [e["group"] for e in data["groups"]["age"]] == ["fifties", "twenties"]
    wer_gaps = [g for g in data["gaps"]["gender*age"] if g["metric"] == "wer"]
    assert [g["kind"] for g in wer_gaps] == ["pair"] * 6 + ["largest"]
    largest = wer_gaps[-1]
    worst = max(data["groups"]["gender*age"], key=lambda e: e["wer"])
    best = min(data["groups"]["gender*age"], key=lambda e: e["wer"])
    assert (largest["a"], largest["b"]) == (worst["group"], best["group"])
    assert largest["diff"] == pytest.approx(worst["wer"] - best["wer"])
    assert largest["p_value"] is None
    # Simultaneous over 4 groups, so no narrower than the same pair's own interval (the
    # fixture's speakers within a group are identical; test_stats checks it is wider).
    pair = next(g for g in wer_gaps if {g["a"], g["b"]} == {worst["group"], best["group"]})
    assert (
        largest["diff_ci"][0] <= pair["diff_ci"][0] and largest["diff_ci"][1] >= pair["diff_ci"][1]
    )


def test_no_speaker_column_falls_back_to_utterances(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "speaker"} for r in gender_rows()]
    path = write_transcripts(tmp_path / "t.jsonl", rows)
    data = run_json("score", str(path), "--groups", "gender", "--bootstrap", "200")
    assert data["method"]["resampling_unit"] == "utterance"
    assert data["overall"]["n_speakers"] is None
    assert any("resample utterances" in w for w in data["warnings"])


def test_speaker_col_and_tsv(tmp_path: Path) -> None:
    rows = [{**r, "client_id": r.pop("speaker")} for r in gender_rows()]
    path = write_transcripts(tmp_path / "t.tsv", rows)
    data = run_json("score", str(path), "--speaker-col", "client_id", "--bootstrap", "200")
    assert data["overall"]["n_speakers"] == 12


def test_empty_group_values_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = gender_rows()
    for row in rows[:5]:
        row["gender"] = ""
    path = write_transcripts(tmp_path / "t.csv", rows)
    data = run_json("score", str(path), "--groups", "gender", "--bootstrap", "200")
    assert data["dropped"]["gender"]["message"] == "dropped 5 of 60 rows with empty gender"
    assert sum(e["n_utterances"] for e in data["groups"]["gender"]) == 55
    assert data["overall"]["n_utterances"] == 60


def test_bootstrap_zero_means_no_intervals_and_says_so(gender_csv: Path) -> None:
    data = run_json("score", str(gender_csv), "--groups", "gender", "--bootstrap", "0")
    assert data["overall"]["wer_ci"] is None
    assert data["groups"]["gender"][0]["wer_ci"] is None
    assert "--bootstrap 0: no confidence intervals were computed" in data["warnings"]
    result = runner.invoke(app, ["score", str(gender_csv), "--bootstrap", "0", "--format", "md"])
    assert "No intervals (--bootstrap 0)." in result.stdout
    # Permutation p-values do not depend on --bootstrap.
    assert data["gaps"]["gender"][0]["p_value"] is not None
    assert data["method"]["interval"] == "none" and data["method"]["permutations"] == 10_000


def test_normalizer_option(tmp_path: Path) -> None:
    path = write_transcripts(
        tmp_path / "t.csv", [{"ref": "Bonjour, Marie !", "hyp": "bonjour marie"}]
    )
    assert run_json("score", str(path))["overall"]["errors"] == 3  # 2 subs + "!" deleted
    assert run_json("score", str(path), "--normalizer", "cv-french")["overall"]["errors"] == 0


@pytest.mark.parametrize(
    ("rows_or_bytes", "suffix", "args", "message"),
    [
        (
            [{"id": 1, "ref": "a", "hypothesis": "a"}],
            ".csv",
            [],
            "no column 'hyp' (--hyp-col); columns are: id, ref, hypothesis",
        ),
        (
            [{"id": 1, "ref": "a", "hyp": "a"}],
            ".csv",
            ["--groups", "gender"],
            "no column 'gender' (--groups); columns are: id, ref, hyp",
        ),
        (
            [{"id": 1, "ref": "a", "hyp": "a"}],
            ".csv",
            ["--speaker-col", "client_id"],
            "no column 'client_id' (--speaker-col)",
        ),
        (b"", ".csv", [], "the file is empty"),
        ("id,ref,hyp\n1,caf\xe9,cafe\n".encode("latin-1"), ".csv", [], "not UTF-8 (byte 0xe9"),
        (
            [
                {"id": "x", "ref": "a", "hyp": "a"},
                {"id": "y", "ref": "b", "hyp": "b"},
                {"id": "x", "ref": "c", "hyp": "c"},
            ],
            ".csv",
            [],
            "duplicate utterance id 'x' on lines 2 and 4 (--id-col id)",
        ),
        (b'{"id": 1, "ref": "a", "hyp": "a"}\n{"id": 2,\n', ".jsonl", [], "line 2: not valid JSON"),
        (b"id,ref,hyp\n", ".csv", [], "a header but no rows"),
        ([{"id": 1, "ref": "a", "hyp": "a"}], ".xlsx", [], "unknown format '.xlsx'"),
        (
            [{"id": 1, "ref": "a", "hyp": "a"}],
            ".csv",
            ["--metrics", "wer,bleu"],
            "--metrics: unknown metric 'bleu'; known: cer, gap, group_cer, group_wer",
        ),
        (
            [{"id": 1, "ref": "a", "hyp": "a"}],
            ".csv",
            ["--normalizer", "fr"],
            "--normalizer: unknown normalizer 'fr'; known: basic, cv-french, lower, none, "
            "whisper-basic, whisper-english",
        ),
        (
            [{"id": 1, "ref": "a", "hyp": "a"}],
            ".csv",
            ["--format", "docx"],
            "--format: unknown exporter 'docx'; known: csv, html, json, latex, md, rich",
        ),
    ],
)
def test_bad_input_gets_one_line_naming_the_problem(
    tmp_path: Path, rows_or_bytes: Any, suffix: str, args: list[str], message: str
) -> None:
    path = tmp_path / f"in{suffix}"
    if isinstance(rows_or_bytes, bytes):
        path.write_bytes(rows_or_bytes)
    else:
        write_transcripts(path, rows_or_bytes)
    line = fail("score", str(path), *args)
    assert line.startswith("error: ")
    assert message in line
    if "column" in message or "UTF-8" in message or "empty" in message:
        assert str(path) in line


def test_missing_file() -> None:
    assert "nope.csv: no such file" in fail("score", "nope.csv")


def test_out_writes_file_and_formats_agree(gender_csv: Path, tmp_path: Path) -> None:
    common = ["score", str(gender_csv), "--groups", "gender", "--bootstrap", "200"]
    for fmt in ("md", "latex", "csv", "rich", "json"):
        out = tmp_path / f"report.{fmt}"
        result = runner.invoke(app, [*common, "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert f"wrote {out}" in result.stderr
    data = json.loads((tmp_path / "report.json").read_text())
    female = data["groups"]["gender"][0]
    lo, hi = female["wer_ci"]
    cell = f"{100 * female['wer']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    for fmt in ("md", "latex", "rich"):
        assert cell in (tmp_path / f"report.{fmt}").read_text(), fmt
    csv_text = (tmp_path / "report.csv").read_text()
    assert f"gender,female_feminine,wer,{female['wer']},{female['wer_ci'][0]}" in csv_text


def test_plugins_command_lists_builtins_and_the_example_plugin() -> None:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["asrfair.default_plugins.metrics"]["hooks"] == ["register_metrics"]
    assert rows["agebuckets"]["package"] == "asrfair-agebuckets"
    assert rows["agebuckets"]["version"] == "0.1.0"
    assert rows["agebuckets"]["hooks"] == ["register_metrics", "register_subsets"]
    assert {
        "kind": "metric",
        "name": "ser",
        "help": "sentence error rate with speaker intervals",
    } in (rows["agebuckets"]["registers"])
    table = runner.invoke(app, ["plugins"]).stdout
    assert "asrfair-agebuckets" in table
    assert "│ metric ser " in table and "sentence error rate with speaker intervals" in table


def test_example_plugin_metric_is_usable_from_score(gender_csv: Path) -> None:
    data = run_json(
        "score",
        str(gender_csv),
        "--groups",
        "gender",
        "--metrics",
        "wer,group_wer,ser",
        "--bootstrap",
        "200",
    )
    assert data["overall"]["ser"] == pytest.approx((30 + 12) / 60)  # all female, 2 of 5 male utts
    female = data["groups"]["gender"][0]
    # Every female utterance is wrong: speakers with equal rates get the token-level variance.
    assert female["ser"] == 1.0 and female["ser_ci"][0] < 1.0 < female["ser_ci"][1]
    assert any("ser: speakers with equal rates" in w for w in female["warnings"])
    result = runner.invoke(
        app, ["score", str(gender_csv), "--metrics", "wer,ser", "--format", "md"]
    )
    assert "| group | WER | SER |" in result.stdout


def test_compare_two_systems(tmp_path: Path) -> None:
    rows_a = gender_rows()
    rows_b = [{**r, "hyp": r["ref"]} if r["gender"] == "female_feminine" else r for r in rows_a]
    a = write_transcripts(tmp_path / "a.csv", rows_a)
    b = write_transcripts(tmp_path / "b.csv", rows_b[:-1])  # one id missing in B
    data = run_json("compare", str(a), str(b), "--groups", "gender", "--bootstrap", "500")
    overall = data["overall"]["wer"]
    assert overall["diff"] < 0 and overall["diff_ci"][1] < 0
    assert overall["p_b_better"] == 1.0
    female, male = data["groups"]["gender"]
    assert female["wer"]["rate_b"] == 0.0
    assert male["wer"]["diff"] == 0.0
    assert (male["wer"]["p_b_better"], male["wer"]["p_a_better"], male["wer"]["p_tie"]) == (0, 0, 1)
    assert data["method"]["comparison"].startswith("paired bootstrap")
    assert "59 shared ids; 1 only in A, 0 only in B" in data["warnings"][0]
    md = runner.invoke(app, ["compare", str(a), str(b), "--groups", "gender", "--format", "md"])
    header = "| group | metric | A | B | B - A (pts) | P(B better) | P(A better) | P(tie) |"
    assert header in md.stdout


def test_compare_refuses_different_references(tmp_path: Path) -> None:
    rows_a = gender_rows()
    rows_b = [{**r, "ref": r["ref"] + " encore"} for r in rows_a]
    a = write_transcripts(tmp_path / "a.csv", rows_a)
    b = write_transcripts(tmp_path / "b.csv", rows_b)
    assert "utterance 's0-u0' has different references" in fail("compare", str(a), str(b))
