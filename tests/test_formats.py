"""Input formats of ``score`` and ``compare`` (issue 11, item 4): Kaldi, sclite trn and stm/ctm,
NeMo manifests, Parquet and standard input, each end to end through the CLI; sclite's formats
also against SCTK's own test data and the numbers sclite reported for it (tests/data/sctk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import asrfair
from asrfair.cli import app
from asrfair.corpus import load_corpus
from asrfair.errors import AsrfairError
from asrfair.plugins import installed
from conftest import gender_rows, tone, write_transcripts
from test_cli import fail, run_json, runner

SCTK = Path(__file__).resolve().parent / "data" / "sctk"
FAST = ("--bootstrap", "0", "--permutations", "0")


def by_group(report: dict[str, Any], grouping: str) -> dict[str, dict[str, Any]]:
    return {entry["group"]: entry for entry in report["groups"][grouping]}


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# --- Kaldi ----------------------------------------------------------------------------------


def kaldi_dir(root: Path, *, genders: bool = True) -> Path:
    """Four speakers, two utterances each; hypotheses of the women carry one error each."""
    rows = [(f"spk{s}-utt{u}", f"spk{s}") for s in range(4) for u in range(2)]
    write(root / "text", [f"{utt} le chat dort" for utt, _ in rows])
    write(root / "utt2spk", [f"{utt} {spk}" for utt, spk in rows])
    if genders:
        write(root / "spk2gender", [f"spk{s} {'f' if s % 2 else 'm'}" for s in range(4)])
    return root


def kaldi_hyp(path: Path, root: Path, wrong: str = "chien") -> Path:
    utts = [line.split()[0] for line in (root / "text").read_text().splitlines()]
    lines = [f"{u} le {wrong if u[3] in '13' else 'chat'} dort" for u in utts]
    return write(path, lines)


def test_kaldi_data_directory_with_a_decode(tmp_path: Path) -> None:
    data = kaldi_dir(tmp_path / "data" / "test")
    hyp = kaldi_hyp(tmp_path / "exp" / "text", data)
    report = run_json("score", str(hyp), "--ref-file", str(data), "--groups", "gender", *FAST)
    groups = by_group(report, "gender")
    assert set(groups) == {"male", "female"}  # spk2gender's m/f
    assert (groups["female"]["errors"], groups["female"]["n_ref_words"]) == (4, 12)
    assert groups["male"]["errors"] == 0 and report["overall"]["n_speakers"] == 4
    assert report["config"]["reference"] == str(data)


def test_kaldi_compare_takes_two_decodes_of_one_data_directory(tmp_path: Path) -> None:
    data = kaldi_dir(tmp_path / "data")
    a = kaldi_hyp(tmp_path / "a" / "text", data)
    b = kaldi_hyp(tmp_path / "b" / "text", data, wrong="chat")
    report = run_json("compare", str(a), str(b), "--ref-file", str(data), "--groups", "gender")
    female = next(e for e in report["groups"]["gender"] if e["group"] == "female")
    assert female["wer"]["diff"] == pytest.approx(-4 / 12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, h: write(h, ["spk0-utt0 le chat dort"]), "no hypothesis for utterance"),
        (
            lambda d, h: write(h, [*h.read_text().splitlines(), "spk9-utt0 x"]),
            "line 9: utterance 'spk9-utt0' is not in",
        ),
        (lambda d, h: write(d / "utt2spk", ["spk0-utt0 spk0"]), "no speaker for utterance"),
        (lambda d, h: write(d / "spk2gender", ["spk0 m"]), "no gender for speaker 'spk1'"),
        (lambda d, h: write(d / "utt2spk", ["spk0-utt0"]), "utt2spk, line 1: expected"),
        (
            lambda d, h: write(h, ["spk0-utt0 a", "spk0-utt0 b"]),
            "line 2: 'spk0-utt0' is also on line 1",
        ),
        (lambda d, h: (d / "text").unlink(), "not a Kaldi data directory (no text)"),
    ],
)
def test_bad_kaldi_inputs_name_the_file_and_the_fix(
    tmp_path: Path, change: Any, message: str
) -> None:
    data = kaldi_dir(tmp_path / "data")
    hyp = kaldi_hyp(tmp_path / "text", data)
    change(data, hyp)
    assert message in fail("score", str(hyp), "--ref-file", str(data))


def test_a_kaldi_folder_as_the_input_says_to_pass_the_decode(tmp_path: Path) -> None:
    data = kaldi_dir(tmp_path / "data")
    assert f"--ref-file {data}" in fail("score", str(data))


# --- sclite trn -----------------------------------------------------------------------------


def test_trn_speakers_come_from_the_utterance_ids(tmp_path: Path) -> None:
    ref = write(
        tmp_path / "ref.trn",
        [";; comment", "a b { c / d } e (ann-001)", "a (uh) b (bob_002)", "x y (bob-003)"],
    )
    hyp = write(tmp_path / "hyp.trn", ["a b d e (ann-001)", "a b (bob_002)", "x z (bob-003)"])
    report = run_json("score", str(hyp), "--ref-file", str(ref), "--groups", "speaker", *FAST)
    speakers = by_group(report, "speaker")
    # The alternation takes "d", the optional "(uh)" is left out: only "z" is an error.
    assert {s: (e["errors"], e["n_ref_words"]) for s, e in speakers.items()} == {
        "ann": (0, 4),
        "bob": (1, 4),
    }
    regex = run_json(
        "score", str(hyp), "--ref-file", str(ref), "--speaker-from-id", r"^(.)", "--groups",
        "speaker", *FAST,
    )  # fmt: skip
    assert set(by_group(regex, "speaker")) == {"a", "b"}
    wsj = run_json("score", str(hyp), "--ref-file", str(ref), "--speaker-from-id", "wsj", *FAST)
    assert wsj["overall"]["n_speakers"] == 2  # "ann", "bob"


@pytest.mark.parametrize(
    ("ref", "hyp", "options", "message"),
    [
        (["a b"], ["a b (s-1)"], [], "ref.trn, line 1: no utterance id"),
        (["a (s-1)", "b (s-1)"], ["a (s-1)"], [], "ref.trn, line 2: utterance id 's-1' is also"),
        (["a (s-1)", "b (s-2)"], ["a (s-1)"], [], "no hypothesis for utterance 's-2'"),
        (["a (s-1)"], ["a (s-1)", "b (s-2)"], [], "hyp.trn, line 2: utterance 's-2' is not in"),
        (["a (s1)"], ["a (s1)"], [], "no speaker in utterance id 's1'"),
        (["a { b (s-1)"], ["a (s-1)"], [], "ref.trn, line 1: alternation '{' is never closed"),
        (["a (s-1)"], ["a (s-1)"], ["--speaker-from-id", "("], "not spu_id, wsj or a valid"),
        (["a (s-1)"], ["{ a / b } (s-1)"], [], "hyp.trn, line 1: the hypothesis holds an"),
    ],
)
def test_bad_trn_inputs_name_the_line(
    tmp_path: Path, ref: list[str], hyp: list[str], options: list[str], message: str
) -> None:
    ref_path, hyp_path = write(tmp_path / "ref.trn", ref), write(tmp_path / "hyp.trn", hyp)
    assert message in fail("score", str(hyp_path), "--ref-file", str(ref_path), *options)


def test_trn_matches_sclite_on_sctk_test17() -> None:
    """sclite -r test.vietnamese.ref.trn -h test.vietnamese.hyp.trn -i spu_id, case-insensitive
    (base/test17.raw): 686 words, 0 substitutions, 136 deletions, 136 insertions."""
    report = run_json(
        "score", str(SCTK / "test.vietnamese.hyp.trn"),
        "--ref-file", str(SCTK / "test.vietnamese.ref.trn"),
        "--normalizer", "lower", "--groups", "speaker", *FAST,
    )  # fmt: skip
    overall = report["overall"]
    counts = ("n_ref_words", "substitutions", "deletions", "insertions", "errors")
    assert tuple(overall[k] for k in counts) == (686, 0, 136, 136, 272)
    assert list(by_group(report, "speaker")) == ["SPK1"] and overall["n_utterances"] == 6


# --- sclite stm/ctm -------------------------------------------------------------------------


def test_stm_ctm_matches_sclite_per_speaker_on_sctk_hubscr_data() -> None:
    """hubscr's lvc_hyp2.notag.ctm.filt.raw for recording 3129: words and errors per speaker."""
    report = run_json(
        "score", str(SCTK / "lvc_hyp2.notag.3129.ctm.filt"),
        "--ref-file", str(SCTK / "lvc_refe.notag.noat.3129.stm.filt"), "--groups", "speaker",
        *FAST,
    )  # fmt: skip
    speakers = by_group(report, "speaker")
    assert (speakers["3129-A"]["n_utterances"], speakers["3129-B"]["n_utterances"]) == (5, 17)
    assert (speakers["3129-A"]["n_ref_words"], speakers["3129-A"]["errors"]) == (188, 168)
    assert (speakers["3129-B"]["n_ref_words"], speakers["3129-B"]["errors"]) == (599, 305)
    a = speakers["3129-A"]  # here even sclite's weighted split into S, D and I is matched
    assert (a["substitutions"], a["deletions"], a["insertions"]) == (54, 73, 41)


def test_stm_labels_become_groups_and_ctm_words_go_by_time(tmp_path: Path) -> None:
    stm = write(
        tmp_path / "ref.stm",
        [
            ";; a comment",
            "rec1 1 ann 0.0 2.0 <o,f0,female> the cat",
            "rec1 1 bob 2.0 4.0 <o,f0,male> { a / an } dog",
            "rec1 1 bob 4.0 6.0 <o,f0,male> IGNORE_TIME_SEGMENT_IN_SCORING",
        ],
    )
    ctm = write(
        tmp_path / "hyp.ctm",
        [
            "rec1 1 2.5 0.2 an",  # into bob's segment, before "dog" although listed first
            "rec1 1 0.1 0.3 the",
            "rec1 1 0.5 0.3 cat 0.9",
            "rec1 1 3.0 0.2 dog",
            "rec1 1 4.5 0.2 ignored",  # in an ignored segment: not scored
            "rec1 1 7.0 0.2 extra",  # in no segment: an insertion
        ],
    )
    report = run_json(
        "score", str(ctm), "--ref-file", str(stm), "--stm-labels", "set,condition,gender",
        "--groups", "gender", *FAST,
    )  # fmt: skip
    genders = by_group(report, "gender")
    assert genders["female"]["errors"] == 0 and genders["male"]["errors"] == 0
    assert genders["male"]["n_ref_words"] == 2  # "an dog": the alternation's nearer option
    assert report["overall"]["insertions"] == 1  # "extra", under inter_segment_gap
    plain = run_json("score", str(ctm), "--ref-file", str(stm), "--groups", "label3", *FAST)
    assert set(by_group(plain, "label3")) >= {"female", "male"}


@pytest.mark.parametrize(
    ("stm", "ctm", "message"),
    [
        (["rec 1 s 0 1"], ["rec 1 x 0.2 a"], "hyp.ctm, line 1: start 'x' is not a number"),
        (["rec 1 s 0"], ["rec 1 0 1 a"], "ref.stm, line 1: 4 fields"),
        (["rec 1 s 2 1 a"], ["rec 1 0 1 a"], "ref.stm, line 1: the segment ends (1.0) before"),
        (["rec 1 s 0 1 a"], ["other 1 0 1 a"], "hyp.ctm, line 1: recording 'other' channel"),
        (["rec 1 s 0 1 a"], ["rec 1 0 1"], "hyp.ctm, line 1: 4 fields"),
        (["rec 1 s 0 1 <o,f a"], ["rec 1 0 1 a"], "labels '<o,f' do not end with '>'"),
        (["rec 1 s nan nan a"], ["rec 1 0 1 a"], "ref.stm, line 1: start 'nan' is not a number"),
        (["rec 1 s 0 1 a"], ["rec 1 -5 1 a"], "hyp.ctm, line 1: start '-5' is not a number"),
        (["rec 1 s 0 1 a"], ["rec 1 0 inf a"], "hyp.ctm, line 1: duration 'inf' is not a number"),
    ],
)
def test_bad_stm_and_ctm_lines_are_named(
    tmp_path: Path, stm: list[str], ctm: list[str], message: str
) -> None:
    ref, hyp = write(tmp_path / "ref.stm", stm), write(tmp_path / "hyp.ctm", ctm)
    assert message in fail("score", str(hyp), "--ref-file", str(ref))


def test_trn_or_ctm_without_a_reference_asks_for_one(tmp_path: Path) -> None:
    hyp = write(tmp_path / "hyp.ctm", ["rec 1 0 1 a"])
    assert "name the reference with --ref-file (ref.stm)" in fail("score", str(hyp))
    table = write_transcripts(tmp_path / "t.csv", gender_rows(2, 1))
    assert "--ref-file is for Kaldi, trn and stm/ctm hypotheses" in fail(
        "score", str(table), "--ref-file", str(hyp)
    )
    assert "--input-format 'xml': choose one of" in fail(
        "score", str(table), "--input-format", "xml"
    )


# --- NeMo manifests, Parquet, standard input ------------------------------------------------


def nemo_records(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """gender_rows as NeMo writes them: audio_filepath, duration, text and pred_text."""
    return [
        {
            "audio_filepath": f"audio/{r['id']}.wav",
            "duration": 1.5,
            "text": r["ref"],
            "pred_text": r["hyp"],
            "speaker": r["speaker"],
            "gender": r["gender"],
        }
        for r in rows
    ]


def test_nemo_manifest_with_its_json_suffix(tmp_path: Path) -> None:
    rows = gender_rows()
    path = tmp_path / "predictions.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in nemo_records(rows)))
    report = run_json("score", str(path), "--groups", "gender", *FAST)
    expected = run_json(
        "score", str(write_transcripts(tmp_path / "t.csv", rows)), "--groups", "gender", *FAST
    )
    assert report["groups"] == expected["groups"]
    # Ids are the audio paths, so compare pairs two systems' manifests without --pair-by-line.
    same = run_json("compare", str(path), str(path), "--groups", "gender")
    assert same["overall"]["wer"]["diff"] == 0.0
    # A column the user names wins over NeMo's defaults.
    renamed = run_json("score", str(path), "--hyp-col", "text", *FAST)
    assert renamed["overall"]["errors"] == 0


def test_parquet(tmp_path: Path) -> None:
    rows = gender_rows()
    path = tmp_path / "t.parquet"
    pd.DataFrame(rows).assign(n=range(len(rows))).to_parquet(path)
    report = run_json("score", str(path), "--groups", "gender", *FAST)
    csv = write_transcripts(tmp_path / "t.csv", rows)
    assert report["groups"] == run_json("score", str(csv), "--groups", "gender", *FAST)["groups"]
    pd.DataFrame({"ref": ["a"], "hyp": ["a"], "tags": [["x", "y"]]}).to_parquet(path)
    assert f"{path}: column 'tags' holds lists or structs" in fail("score", str(path))
    path.write_text("not parquet")
    assert f"{path}: not a readable Parquet file" in fail("score", str(path))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_standard_input_is_told_by_its_first_line(tmp_path: Path, suffix: str) -> None:
    rows = gender_rows()
    text = write_transcripts(tmp_path / f"t{suffix}", rows).read_text()
    result = runner.invoke(app, ["score", "-", "--groups", "gender", *FAST, "-f", "json"], text)
    assert result.exit_code == 0, result.output
    expected = run_json("score", str(tmp_path / f"t{suffix}"), "--groups", "gender", *FAST)
    assert json.loads(result.stdout)["groups"] == expected["groups"]


def test_standard_input_errors_name_it_and_the_format_can_be_forced() -> None:
    result = runner.invoke(app, ["score", "-"], "id,ref,hyp\nu1,a,a,extra\n")
    assert result.exit_code == 2 and "<stdin>, line 2: 4 fields" in result.stderr
    # A one-column TSV has no tab to be told by; --input-format says what it is.
    forced = runner.invoke(
        app, ["score", "-", "--input-format", "tsv", "--ref-col", "ref,x", *FAST], "ref,x\na\n"
    )
    assert "no column 'hyp'" in forced.stderr


def test_the_api_reads_every_format(tmp_path: Path) -> None:
    data = kaldi_dir(tmp_path / "data")
    hyp = kaldi_hyp(tmp_path / "text", data)
    result = asrfair.score(hyp, ref_file=data, groups="gender", bootstrap=0, permutations=0)
    assert result.by_group.set_index("group").loc["female", "errors"] == 4
    forced = asrfair.score(hyp, ref_file=data, input_format="kaldi", bootstrap=0, permutations=0)
    assert forced.overall["errors"] == 4


# --- the same formats as datasets -----------------------------------------------------------


def test_nemo_manifest_and_kaldi_directory_as_datasets(tmp_path: Path) -> None:
    import soundfile as sf

    (tmp_path / "audio").mkdir()
    records = nemo_records(gender_rows(2, 2))
    for record in records:
        sf.write(tmp_path / str(record["audio_filepath"]), tone(0.5, 16_000), 16_000)
    manifest = tmp_path / "train_manifest.json"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    frame = load_corpus(f"manifest:{manifest}", installed().datasets()).frame
    assert frame["audio"].map(lambda p: Path(p).is_file()).all()
    assert list(frame["sentence"]) == [r["text"] for r in records]

    data = kaldi_dir(tmp_path / "data")
    utts = [line.split()[0] for line in (data / "text").read_text().splitlines()]
    write(data / "wav.scp", [f"{u} {tmp_path / 'audio' / 's0-u0.wav'}" for u in utts])
    corpus = load_corpus(f"manifest:{data}", installed().datasets()).frame
    assert set(corpus["gender"]) == {"male", "female"} and corpus["speaker"].nunique() == 4
    result = runner.invoke(app, ["data", "inspect", f"manifest:{data}", "--groups", "gender"])
    assert result.exit_code == 0, result.output

    write(data / "wav.scp", [f"{utts[0]} sox a.wav -t wav - |"])
    with pytest.raises(AsrfairError, match=r"wav.scp, line 1: .* through a command"):
        load_corpus(f"manifest:{data}", installed().datasets())


def test_stm_ignore_segments_in_any_case_and_ctm_ties_in_file_order(tmp_path: Path) -> None:
    """TED-LIUM writes ignore_time_segment_in_scoring in lower case; words that share a
    midpoint (made-up times) keep their order in the file, not their spelling's."""
    ref = write(
        tmp_path / "ref.stm",
        ["rec 1 s 0 2 b a c", "rec 1 t 2 4 ignore_time_segment_in_scoring"],
    )
    hyp = write(tmp_path / "hyp.ctm", ["rec 1 0.5 0 b", "rec 1 0.5 0 a", "rec 1 1.5 0 c"])
    data = run_json("score", str(hyp), "--ref-file", str(ref))
    assert data["overall"]["n_ref_words"] == 3 and data["overall"]["errors"] == 0


def test_a_null_hypothesis_in_a_manifest_is_counted(tmp_path: Path) -> None:
    rows = [
        {"audio_filepath": "a.wav", "text": "un deux", "pred_text": None},
        {"audio_filepath": "b.wav", "text": "trois", "pred_text": "trois"},
    ]
    path = tmp_path / "m.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = run_json("score", str(path))
    assert any("1 of 2 lines have no hypothesis" in w for w in data["warnings"])


def test_a_kaldi_text_file_alone_asks_for_its_data_directory(tmp_path: Path) -> None:
    data = kaldi_dir(tmp_path / "data")
    hyp = kaldi_hyp(tmp_path / "decode" / "text", data)
    assert "a Kaldi 'text' file; name its data directory with --ref-file" in fail("score", str(hyp))
    message = fail("score", str(hyp), "--ref-file", str(data / "text"), "--input-format", "kaldi")
    assert f"give its folder, --ref-file {data}" in message
