"""Inputs that used to give wrong numbers with exit code 0 (issue 9): each is now refused."""

from __future__ import annotations

import builtins
import errno
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asrfair.audio import write_clip
from asrfair.cli import app
from asrfair.errors import AsrfairError
from asrfair.infer import Clip, transcribe_to_file
from asrfair.plugins import installed
from asrfair.runs import run_lock, score_predictions
from asrfair.scoring import COUNT_COLUMNS
from conftest import (
    gender_rows,
    make_cv_release,
    make_tiny_model,
    requires_tool,
    write_transcripts,
)
from test_cli import fail, run_json, runner


@pytest.mark.parametrize("sep", [",", "\t"])
@pytest.mark.parametrize(
    ("rows", "line", "fields"),
    [
        # One extra field on the first row: pandas took the first column as the index.
        (["s0,male,le chat,le chat,extra", "s1,female,bonjour,bonjour"], 2, 5),
        # A later row with one field too many, and one with too few.
        (["s0,male,le chat,le chat", "s1,female,bonjour,bonjour,extra"], 3, 5),
        (["s0,male,le chat,le chat", "s1,female,bonjour"], 3, 3),
    ],
)
def test_a_row_with_the_wrong_number_of_fields_names_its_line(
    tmp_path: Path, sep: str, rows: list[str], line: int, fields: int
) -> None:
    suffix = ".csv" if sep == "," else ".tsv"
    text = "\n".join(["speaker,gender,ref,hyp", *rows]).replace(",", sep) + "\n"
    path = tmp_path / f"t{suffix}"
    path.write_text(text)
    message = fail("score", str(path), "--groups", "gender")
    assert f"{path}, line {line}: {fields} fields, but the header has 4" in message


def test_quoted_fields_may_hold_commas_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        'id,speaker,ref,hyp\nu1,s1,"un, deux","un, deux"\nu2,s2,"trois\nquatre",trois\n'
    )
    data = run_json("score", str(path), "--bootstrap", "0")
    assert data["overall"]["n_ref_words"] == 4 and data["overall"]["errors"] == 1


def test_a_repeated_column_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,ref,hyp,ref\nu1,a,a,b\n")
    assert "column 'ref' is in the header twice" in fail("score", str(path))


def test_compare_without_ids_refuses_to_pair_by_line_unless_told(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "id"} for r in gender_rows()]
    a = write_transcripts(tmp_path / "a.csv", rows)
    b = write_transcripts(tmp_path / "b.csv", list(reversed(rows)))
    message = fail("compare", str(a), str(b), "--groups", "gender")
    assert f"{a} has no id column" in message and "--pair-by-line" in message
    # Told to pair by line, the rows must still agree: here every reference is the same
    # sentence, but the reversed file pairs other speakers' utterances.
    assert "different speakers" in fail("compare", str(a), str(b), "--pair-by-line")
    same = run_json("compare", str(a), str(a), "--pair-by-line", "--groups", "gender")
    assert same["overall"]["wer"]["diff"] == 0.0


def test_a_run_folder_is_held_by_one_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from asrfair.runs import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        in_use = rf"--out {out} is in use .*pid {holder.pid} on"
        with pytest.raises(AsrfairError, match=in_use), run_lock(out):
            pass
        alias = tmp_path / "alias"  # another name for the same folder takes the same lock
        alias.symlink_to(out, target_is_directory=True)
        with pytest.raises(AsrfairError, match="is in use"), run_lock(alias):
            pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(out):  # free again once its holder is gone
        assert not out.exists()  # the lock sits beside the folder, not in it


def test_predictions_with_a_repeated_id_are_refused(tmp_path: Path) -> None:
    record = {"id": "u1", "speaker": "s1", "ref": "a b", "hyp": "a b", "gender": "male"}
    record.update(dict.fromkeys(COUNT_COLUMNS, 0))
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(json.dumps(record) for _ in range(2)) + "\n")
    with pytest.raises(AsrfairError, match="utterance 'u1' is predicted more than once"):
        score_predictions(path, ("gender",))


def test_user_text_with_brackets_is_printed_as_written(tmp_path: Path) -> None:
    path = write_transcripts(tmp_path / "results[v2].csv", gender_rows())
    out = tmp_path / "out[v2].md"
    result = runner.invoke(app, ["score", str(path), "--groups", "gender", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr and out.is_file()
    assert f"{tmp_path / 'nope[v2].csv'}: no such file" in fail(
        "score", str(tmp_path / "nope[v2].csv")
    )
    assert "no column '[/oops]'" in fail("score", str(path), "--groups", "[/oops]")


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["score"], "[default: id, else"),
        (["score"], "[default: speaker, else"),
        (["audit"], "[default: the demo"),
        (["audit"], "[default:"),
        (["study"], "[default: beside the"),
        (["data", "prepare"], "[default: $ASRFAIR_CACHE/audio or ~/.cache/asrfair/audio]"),
    ],
)
def test_help_keeps_its_default_hints(command: list[str], hint: str) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert hint in result.stdout


def test_jsonl_values_must_be_flat(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "1", "ref": "a", "hyp": "a"}\n{"id": "2", "ref": ["a"], "hyp": "a"}\n')
    assert f"{path}, line 2: 'ref' holds a list or an object" in fail("score", str(path))


def test_damaged_run_files_are_one_line_errors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"overall": ')  # cut off mid-write
    assert f"{run / 'metrics.json'}: not valid JSON" in fail("report", str(run))
    (run / "config.json").write_text("{")
    line = fail("audit", "--no-train", "--resume", "--out", str(run))
    assert f"{run / 'config.json'}: not valid JSON" in line and "choose another --out" in line


def test_outputs_that_cannot_be_folders_are_refused(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    assert f"--out {taken} is a file" in fail("audit", "--no-train", "--out", str(taken))
    study = tmp_path / "mystudy"  # no suffix: its folder would be the file itself
    study.write_text('[study]\nname = "x"\n')
    assert "name the study file with a .toml suffix" in fail("study", str(study))


def test_exports_keep_hostile_labels_inert(tmp_path: Path) -> None:
    rows = gender_rows()
    for row in rows:
        row["gender"] = "=HYPERLINK(1)" if row["gender"] == "male_masculine" else "f*a_b\n<b>|$x$"
    path = write_transcripts(tmp_path / "t.jsonl", rows)
    base = ("score", str(path), "--groups", "gender", "--bootstrap", "0")
    csv_text = runner.invoke(app, [*base, "--format", "csv"]).stdout
    assert "gender,'=HYPERLINK(1),wer," in csv_text  # neutralised for spreadsheets
    assert ",wer.diff,-0." in csv_text or ",wer.diff,0." in csv_text  # numbers stay numbers
    md = runner.invoke(app, [*base, "--format", "md"]).stdout
    assert "| f\\*a\\_b &lt;b&gt;\\|\\$x\\$ |" in md  # one row, nothing rendered as markup


def test_latex_escapes_each_character_once() -> None:
    from asrfair.default_plugins.exporters import latex_escape

    assert latex_escape(r"$\alpha$ a~b ^x 50%") == (
        r"\$\textbackslash{}alpha\$ a\textasciitilde{}b \textasciicircum{}x 50\%"
    )


class _FullDisk:
    """A file handle on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, handle: Any, path: Path) -> None:
        self._handle, self._path = handle, path

    def write(self, data: Any) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device", str(self._path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file opened for writing from now on (by pathlib, numpy or open()) is on a full
    disk; reading still works."""
    real_open = io.open

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        return _FullDisk(handle, file) if ("w" in mode or "a" in mode) else handle

    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_a_full_disk_keeps_the_previous_report(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = write_transcripts(tmp_path / "t.csv", gender_rows())
    report = tmp_path / "r.json"
    assert (
        runner.invoke(app, ["score", str(data), "-f", "json", "--out", str(report)]).exit_code == 0
    )
    good = report.read_bytes()
    request.getfixturevalue("full_disk")
    message = fail("score", str(data), "-f", "json", "--out", str(report))
    assert (
        message == f"error: {report}: no space left on device; free space and run again "
        "(the previous file, if any, is unchanged)"
    )
    assert report.read_bytes() == good and not _leftovers(tmp_path)


def test_a_full_disk_stops_audio_preparation_without_blaming_the_clips(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    release = make_cv_release(tmp_path / "cv")
    cache = tmp_path / "cache"
    request.getfixturevalue("full_disk")
    message = fail(
        "data", "prepare", f"commonvoice:{release}", "--workers", "1", "--cache-dir", str(cache)
    )
    assert message.startswith(f"error: {cache}: no space left on device")
    assert "cannot decode" not in message
    assert not _leftovers(cache)


def test_a_full_disk_while_transcribing_keeps_every_finished_line(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "predictions.jsonl"
    out.write_text('{"id": "a", "hyp": "x"}\n')
    clips = []
    for name in ("b", "c"):
        clips.append(Clip(name, write_clip(tmp_path / name, np.zeros(1600, np.float32)), 1600))
    request.getfixturevalue("full_disk")
    with pytest.raises(AsrfairError, match="the 2 finished predictions are kept; add --resume"):
        transcribe_to_file(lambda waves: ["y"] * len(waves), clips, out, progress=False)
    # Half the batch reached the disk: b's line is whole and kept, c's partial line is cut.
    assert out.read_text() == '{"id": "a", "hyp": "x"}\n{"id": "b", "hyp": "y"}\n'


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--train-subset", "bogus"], "--train-subset"),
        (["--train-subset", "fraction:2"], "F must be a number in (0, 1]"),
        (["--train-subset", "age=nowhere"], "selects no rows"),
        (["--model", "no/such/model"], "--model no/such/model"),
        (["--groups", "shoe_size"], "shoe_size"),
        (["--no-train", "--model", "MODEL_WITHOUT_TOKENIZER"], "--model"),
        (["--metrics", "wer,bogus"], "--metrics: unknown metric 'bogus'"),
        (["--split", "bogus"], "--split 'bogus'"),
        (["--test-fraction", "1.5"], "--test-fraction 1.5"),
    ],
)
def test_a_bad_audit_option_touches_neither_the_run_folder_nor_the_audio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: list[str], message: str
) -> None:
    from asrfair import pipeline as audit

    def no_audio(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio was prepared before the options were checked")

    monkeypatch.setattr(audit, "prepare_audio", no_audio)
    release = make_cv_release(tmp_path / "cv")
    model = make_tiny_model(tmp_path / "model")
    bare = tmp_path / "bare"  # a config.json, but no tokenizer for --no-train
    bare.mkdir()
    (bare / "config.json").write_text((model / "config.json").read_text())
    option = [str(bare) if o == "MODEL_WITHOUT_TOKENIZER" else o for o in option]
    out = tmp_path / "runs" / "run"
    args = ["audit", "--dataset", f"commonvoice:{release}", "--model", str(model)]
    line = fail(*args, "--out", str(out), *option)
    assert message in line
    assert not out.parent.exists()  # not even the lock file beside the folder


@requires_tool("pdflatex", "Debian: apt-get install texlive-latex-recommended")
def test_latex_tables_compile_with_pdflatex_and_booktabs(tmp_path: Path) -> None:
    rows = gender_rows()
    for row in rows:
        hostile = "$\\alpha$ a~b ^x 50% #1 & {y} _u \\"
        row["gender"] = hostile if row["gender"] == "male_masculine" else "[x] femme élevée"
    path = write_transcripts(tmp_path / "t.jsonl", rows)
    tables = []
    for command in (["score", str(path)], ["compare", str(path), str(path)]):
        result = runner.invoke(app, [*command, "--groups", "gender", "-f", "latex"])
        assert result.exit_code == 0, result.output
        tables.append(result.stdout)
    for i, table in enumerate(tables):
        (tmp_path / f"table{i}.tex").write_text(table, encoding="utf-8")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{table0.tex}\n\\input{table1.tex}\n\\end{document}\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(encoding="latin-1")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Missing character" not in log and "Undefined control sequence" not in log
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_piped_tables_keep_every_label_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a terminal this narrow would crop the labels
    label = "female_" + "very_long_label_" * 6
    rows = gender_rows()
    for row in rows:
        row["gender"] = label if row["gender"] != "male_masculine" else row["gender"]
    path = write_transcripts(tmp_path / "t.csv", rows)
    result = runner.invoke(app, ["score", str(path), "--groups", "gender"])
    assert result.exit_code == 0, result.output
    assert f"│ {label} " in result.stdout and "…" not in result.stdout
    out = tmp_path / "report.txt"
    runner.invoke(app, ["score", str(path), "--groups", "gender", "--out", str(out)])
    assert f"│ {label} " in out.read_text() and "…" not in out.read_text()


def test_out_must_be_a_regular_file_and_a_symlink_is_written_through(tmp_path: Path) -> None:
    data = write_transcripts(tmp_path / "t.csv", gender_rows())
    assert "is not a regular file" in fail("score", str(data), "--out", "/dev/null")
    target, link = tmp_path / "real.md", tmp_path / "link.md"
    link.symlink_to(target)
    result = runner.invoke(app, ["score", str(data), "-f", "md", "--out", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text().startswith("# ")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    message = fail("score", str(data), "-f", "md", "--out", str(blocker / "r.md"))
    assert message.startswith(f"error: {blocker}") and "choose another path" in message
    # A folder where no file can be made (procfs): one line, not a FileNotFoundError traceback.
    message = fail("score", str(data), "--out", "/proc/r.html")
    assert message == (
        "error: /proc/r.html: no file can be created in /proc (No such file or directory); "
        "choose another path"
    )


def test_predictions_outside_the_test_split_are_left_out_and_said(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    lines = []
    for i in range(3):
        record = {"id": f"u{i}", "speaker": "s", "ref": "a b", "hyp": "a b", "gender": "m"}
        lines.append(json.dumps({**record, **dict.fromkeys(COUNT_COLUMNS, 0)}))
    path.write_text("\n".join(lines) + "\n")
    table = score_predictions(path, ("gender",), {"u0", "u1"})
    assert list(table.frame["id"]) == ["u0", "u1"]
    assert table.notes[0].startswith("left out 1 prediction(s) of utterances no longer in the test")


_GOOD = {"id": "u0", "speaker": "s", "ref": "a", "hyp": "a", "gender": "m"}
_GOOD.update(dict.fromkeys(COUNT_COLUMNS, 0))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: not a prediction record"),
        (json.dumps({**_GOOD, "id": "u9", "w_sub": "two"}), "counts of utterance 'u9' are not"),
    ],
)
def test_a_damaged_predictions_line_is_a_one_line_error(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps(_GOOD) + "\n" + line + "\n")
    with pytest.raises(AsrfairError, match=re.escape(message)):
        score_predictions(path, ("gender",))


def test_jsonl_lines_must_share_their_keys_and_may_hold_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [{"speaker": "s", "ref": "a", "hyp": "a"}, {"speaker": "s", "ref": "b", "Hyp": "b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert "line 2: no 'hyp' key, which the first line has" in fail("score", str(path))
    rows[1] = {"speaker": "s\u2028x", "ref": "b\u0085c", "hyp": "b"}
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    data = run_json("score", str(path))
    assert data["overall"]["n_utterances"] == 2


def test_damaged_stored_files_are_one_line_errors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    assert "not an asrfair report (no overall, groups, method)" in fail("report", str(run))
    (run / "metrics.json").write_bytes(b"\xff\xfe{")
    assert "not UTF-8" in fail("report", str(run))
    from asrfair.runs import StageTimes

    (run / "timings.json").write_text('{"invocations": [1]}')
    with pytest.raises(AsrfairError, match="not a list of stage timings; delete it"):
        StageTimes(run)


def test_a_crashing_third_party_plugin_is_named_not_a_traceback() -> None:
    from asrfair.registry import Registry

    def broken(text: str) -> str:
        raise ZeroDivisionError("oops")

    registry: Registry[object] = Registry("normalizer")
    registry.register("boom", broken, plugin="asrfair-boom")
    with pytest.raises(AsrfairError, match="normalizer 'boom' of plugin 'asrfair-boom' failed"):
        registry.get("boom")("x")  # type: ignore[operator]


def test_markdown_and_latex_keep_links_and_brackets_literal() -> None:
    from asrfair.default_plugins.exporters import latex_escape, markdown_escape

    assert markdown_escape("[a](http://e.vil) ~~s~~") == "[a\\](http://e.vil) \\~\\~s\\~\\~"
    # A row may not open with "[" after the previous row's "\\\\"; brackets inside stay.
    assert latex_escape("[x] 1.0 [0.5, 2]") == "{[}x] 1.0 [0.5, 2]"


def test_a_clip_copied_over_another_in_its_shard_is_decoded_again(tmp_path: Path) -> None:
    from asrfair import audio, store
    from asrfair.audio import AudioSettings, prepare_audio
    from asrfair.corpus import load_corpus

    release = make_cv_release(tmp_path / "cv", n_speakers=1, per_speaker=2)
    corpus = load_corpus(f"commonvoice:{release}", installed().datasets()).frame
    first = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    a, b = (store.parse(c) for c in first.table["cache"])
    data = bytearray(a.shard.read_bytes())
    size = 2 * min(a.n_samples, b.n_samples)
    data[b.offset : b.offset + size] = data[a.offset : a.offset + size]
    a.shard.write_bytes(bytes(data))
    clean = audio.decode(b.source)
    np.testing.assert_allclose(first.waveform(first.table["id"].iloc[1]), clean, atol=2e-5)
    again = prepare_audio(corpus, AudioSettings(workers=1), tmp_path / "cache", progress=False)
    assert again.decoded == 1 and "checksum mismatch" in again.notes[0]


def test_a_damaged_clip_durations_table_falls_back_to_the_clips(tmp_path: Path) -> None:
    release = make_cv_release(tmp_path / "cv")
    (release / "clip_durations.tsv").write_text('clip\tduration[ms]\n"broken\tx\ty\n')
    data = run_json("data", "inspect", f"commonvoice:{release}", "--groups", "gender")
    assert all(row["hours"] > 0 for row in data["groups"]["gender"])  # read from the clips
