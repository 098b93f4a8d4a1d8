"""`asrfair study`, `report` and `compare` on run folders, with a tiny model and corpus."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from asrfair import pipeline as audit_module
from asrfair.cli import app
from asrfair.errors import AsrfairError
from asrfair.plugins import installed
from asrfair.study import load_study
from conftest import make_cv_release, make_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    cv = make_cv_release(root / "cv", n_speakers=13, per_speaker=3)
    model = make_tiny_model(root / "model")
    path = root / "tiny.toml"
    path.write_text(
        f"""
[study]
name = "tiny"
dataset = "commonvoice:{cv}"
model = "{model}"
groups = ["gender", "gender*age"]
subsets = ["all", "male", "female"]

[statistics]
bootstrap = 200
permutations = 200

[hparams.slow]
max_steps = 1
batch_size = 2
learning_rate = 1e-4

[hparams.fast]
max_steps = 1
batch_size = 2
learning_rate = 1e-3
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def finished(study_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "tiny"
    mp = pytest.MonkeyPatch()
    mp.setenv("ASRFAIR_CACHE", str(out.parent / "cache"))
    result = runner.invoke(app, ["study", str(study_file), "--out", str(out), "--format", "md"])
    mp.undo()
    assert result.exit_code == 0, result.output
    return out


def test_study_runs_every_combination_and_writes_its_tables(finished: Path) -> None:
    data = json.loads((finished / "study.json").read_text())
    names = [r["name"] for r in data["runs"]]
    assert names == [f"{s}--{h}" for h in ("slow", "fast") for s in ("all", "male", "female")]
    assert [(c["a"], c["b"]) for c in data["comparisons"]] == [
        ("male--slow", "female--slow"),
        ("male--fast", "female--fast"),
    ]
    for name in ("study.md", "study.tex", "study.csv", "gap_forest.png", "gap_forest.svg"):
        assert (finished / name).is_file(), name
    md = (finished / "study.md").read_text()
    assert "## Runs by gender\n" in md and "## Paired comparisons (same test set)" in md
    assert "## Runs by gender\\*age" in md  # one table per grouping, intersections included
    assert "gender\\*age=female\\*fifties" in md  # escaped: * is emphasis in Markdown
    assert "bootstrap-t intervals from 200 draws resampling speakers" in md
    tex = (finished / "study.tex").read_text()
    assert "\\toprule" in tex and "\\caption{Runs by gender." in tex


def test_plots_exist_and_have_a_size(finished: Path) -> None:
    forest = matplotlib.image.imread(finished / "gap_forest.png")
    assert forest.shape[0] > 200 and forest.shape[1] > 400
    run_plot = matplotlib.image.imread(finished / "runs" / "male--slow" / "group_wer.png")
    assert run_plot.shape[0] > 200 and run_plot.shape[1] > 300


@pytest.mark.parametrize("gather", [[], ["--gather-only"]], ids=["plain", "gather-only"])
def test_running_again_recomputes_nothing(
    finished: Path, study_file: Path, monkeypatch: pytest.MonkeyPatch, gather: list[str]
) -> None:
    def no_runs(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was computed again")

    monkeypatch.setattr(audit_module, "run_audit", no_runs)
    before = (finished / "study.md").read_text()
    result = runner.invoke(
        app, ["study", str(study_file), "--out", str(finished), "--format", "md", *gather]
    )
    assert result.exit_code == 0, result.output
    assert (finished / "study.md").read_text() == before


def test_other_statistics_rescore_finished_runs_without_training(
    finished: Path, study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(audit_module, "fine_tune", no_training)
    monkeypatch.setenv("ASRFAIR_CACHE", str(finished.parent / "cache"))
    other = tmp_path / "other.toml"
    text = study_file.read_text().replace(
        "permutations = 200", 'permutations = 200\ninterval = "t"'
    )
    other.write_text(text)
    out = tmp_path / "copy"

    shutil.copytree(finished, out)
    result = runner.invoke(app, ["study", str(other), "--out", str(out), "--format", "md"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "runs" / "all--slow" / "metrics.json").read_text())
    assert run["method"]["interval"] == "t"  # not the stored bootstrap-t numbers
    stored = json.loads((finished / "runs" / "all--slow" / "metrics.json").read_text())
    assert stored["method"]["interval"] == "auto"
    assert run["overall"]["wer"] == stored["overall"]["wer"]


@pytest.mark.parametrize(
    ("fmt", "name"), [("md", "study.md"), ("latex", "study.tex"), ("html", "report.html")]
)
def test_report_reproduces_the_study_tables_byte_for_byte(
    finished: Path, fmt: str, name: str
) -> None:
    result = runner.invoke(app, ["report", str(finished), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.stdout == (finished / name).read_text()


def test_report_bold_best(finished: Path) -> None:
    md = runner.invoke(app, ["report", str(finished), "--format", "md", "--bold-best"]).stdout
    assert "**" in md
    tex = runner.invoke(app, ["report", str(finished), "--format", "latex", "--bold-best"]).stdout
    assert "\\textbf{" in tex


def test_report_of_one_run_and_its_plot(finished: Path, tmp_path: Path) -> None:
    run = finished / "runs" / "female--fast"
    result = runner.invoke(app, ["report", str(run), "--format", "md"])
    assert result.stdout == (run / "report.md").read_text()
    page = runner.invoke(app, ["report", str(run), "--format", "html"]).stdout
    assert page == (run / "report.html").read_text(encoding="utf-8")
    png = runner.invoke(app, ["report", str(run), "--format", "png"])
    assert png.exit_code == 0 and str(run / "group_wer.png") in png.stdout
    figures = tmp_path / "figures"  # --out names a folder for the figures
    png = runner.invoke(app, ["report", str(run), "--format", "png", "--out", str(figures)])
    assert png.exit_code == 0 and (figures / "group_wer.png").is_file()
    refused = runner.invoke(app, ["report", str(run), "--format", "png", "--out", "p.png"])
    assert refused.exit_code == 2 and "give a folder" in refused.stderr


def test_report_on_a_half_written_run_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "run" / "splits").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    result = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "missing: model, predictions.jsonl, metrics.json" in result.stderr


def test_compare_runs(finished: Path) -> None:
    a, b = finished / "runs" / "male--slow", finished / "runs" / "female--slow"
    result = runner.invoke(
        app, ["compare", str(a), str(b), "--bootstrap", "200", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["systems"] == {"a": str(a), "b": str(b)}
    assert [e["group"] for e in data["groups"]["gender"]] == ["female", "male"]


def test_compare_of_three_runs_gives_one_document_or_one_file_per_pair(
    finished: Path, tmp_path: Path
) -> None:
    a, b, c = (finished / "runs" / f"{s}--slow" for s in ("all", "male", "female"))
    paths = [str(a), str(b), str(c), "--bootstrap", "200"]
    result = runner.invoke(app, ["compare", *paths, "--format", "json"])
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)  # one valid document, not two concatenated
    assert [d["systems"]["b"] for d in docs] == [str(b), str(c)]
    out = tmp_path / "cmp.md"
    result = runner.invoke(app, ["compare", *paths, "--format", "md", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["cmp.female--slow.md", "cmp.male--slow.md"]
    assert "female--slow" in (tmp_path / "cmp.female--slow.md").read_text()
    refused = runner.invoke(app, ["compare", *paths, "--format", "csv"])
    assert refused.exit_code == 2 and "pass --out FILE.csv" in refused.stderr


@pytest.mark.parametrize("command", ["report", "compare", "score"])
def test_reading_a_finished_run_never_imports_the_model_stack(finished: Path, command: str) -> None:
    """compare, report and score read JSON and JSONL; torch and transformers cost seconds."""
    a, b = finished / "runs" / "male--slow", finished / "runs" / "female--slow"
    args = {
        "report": [str(a)],
        "compare": [str(a), str(b), "--bootstrap", "200"],
        "score": [str(a / "predictions.jsonl"), "--bootstrap", "200"],
    }[command]
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom asrfair.cli import app\n"
        "result = CliRunner().invoke(app, sys.argv[1:])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, command, *args], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_compare_refuses_runs_with_different_test_sets(finished: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    src = finished / "runs" / "all--slow"
    for name in ("config.json", "predictions.jsonl"):
        (other / name).write_text((src / name).read_text())
    (other / "splits").mkdir()
    lines = (src / "predictions.jsonl").read_text().splitlines()[:-1]
    (other / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    ids = [json.loads(line)["id"] for line in lines]
    (other / "splits" / "test.txt").write_text("\n".join(ids) + "\n")
    result = runner.invoke(app, ["compare", str(src), str(other)])
    assert result.exit_code == 2
    assert "have different test sets: 1 ids only in A" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[study]\nsubset = ['all']\n", "[study]: unknown key 'subset'; valid keys: "),
        ("[hparams.fast]\nlerning_rate = 1e-3\n", "[hparams.fast]: unknown key 'lerning_rate'"),
        ("[hparams.fast]\nlearning_rate = 'high'\n", "[hparams.fast]: learning_rate must be float"),
        (
            "[hparams.fast]\nlearning_rate = -1.0\n",
            "[hparams.fast]: learning_rate must be positive",
        ),
        ("[hparams.x]\nlayerdrop = 1.5\n", "[hparams.x]: layerdrop must be in [0, 1)"),
        ("[study]\nsubsets = ['all', 'males']\n", "unknown subset 'males'; known:"),
        (
            "[study]\nsubsets = ['all']\ncompare = [['all', 'male']]\n",
            "must name two of the subsets",
        ),
        ("[sutdy]\n", "unknown key 'sutdy'; valid keys: hparams, statistics, study"),
        ("[study\n", "not valid TOML"),
    ],
)
def test_study_file_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AsrfairError) as err:
        load_study(path, installed())
    assert message in str(err.value)
    assert str(path) in str(err.value)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("fmt", "name"), [("md", "study.md"), ("latex", "study.tex")])
def test_committed_notebook_study_tables_come_from_its_stored_metrics(fmt: str, name: str) -> None:
    result = runner.invoke(app, ["report", str(EXAMPLE / "notebook_study"), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.stdout == (EXAMPLE / "notebook_study" / name).read_text(encoding="utf-8")


def test_committed_notebook_study_plot_and_file() -> None:
    forest = matplotlib.image.imread(EXAMPLE / "notebook_study" / "gap_forest.png")
    assert forest.shape[0] > 600 and forest.shape[1] > 600
    study = load_study(EXAMPLE / "notebook_study.toml", installed())
    assert len(study.run_names()) == 12
    assert study.subsets == ["all", "half", "male", "female"] and len(study.hparams) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("statistics = 5\n", "[statistics]: must be a table of keys, not 5"),
        ("hparams = 5\n", "[hparams]: must be a table of keys, not 5"),
        ("[statistics]\nmin_speakers = 0\n", "[statistics]: --min-speakers 0"),
        ("[statistics]\nconfidence = 0.9999\n", "[statistics]: --confidence 0.9999"),
        ('[statistics]\ninterval = "wald"\n', "[statistics]: --interval 'wald'"),
        ("[study]\nseed = -1\n", "[study]: split_seed -1: use a seed of 0 or more"),
        ("[study]\nstats_seed = -1\n", "[study]: stats_seed -1: use a seed of 0 or more"),
    ],
)
def test_bad_study_statistics_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(AsrfairError) as caught:
        load_study(path, installed())
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_run_of_the_bundled_model_still_matches_after_the_project_moves() -> None:
    """config.json of an older run named the demo checkpoint by its absolute path in the
    checkout that made it; moved or reinstalled, the same options must still match."""
    from asrfair.audit_options import AuditOptions
    from asrfair.runs import stored_options

    current = json.loads(json.dumps(AuditOptions().identity()))
    moved = {**current, "model": "/elsewhere/old-clone/src/asrfair/demo/model"}
    assert stored_options({"options": moved}) == current
    other = {**current, "model": "/models/wav2vec2-fr"}
    assert stored_options({"options": other}) != current


# On a cluster: --plan, one run per process (--run/--index), then the gather --------------------


def _plan(study_file: Path, out: Path) -> list[dict[str, object]]:
    result = runner.invoke(
        app, ["study", str(study_file), "--out", str(out), "--plan", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    planned: list[dict[str, object]] = json.loads(result.stdout)
    return planned


def _asrfair(argv: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    """asrfair in a process of its own, as a job array task or a GNU parallel slot runs it."""
    env = {**os.environ, "ASRFAIR_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "asrfair", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_plan_prints_one_quoted_command_per_run(study_file: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a study's folder"
    odd.mkdir()
    copy = odd / "tiny study.toml"
    copy.write_text(study_file.read_text())
    out = odd / "out dir"
    text = runner.invoke(app, ["study", str(copy), "--out", str(out), "--plan"])
    assert text.exit_code == 0, text.output
    names = [f"{s}--{h}" for h in ("slow", "fast") for s in ("all", "male", "female")]
    lines = text.stdout.splitlines()
    assert [shlex.split(line) for line in lines] == [
        ["asrfair", "study", str(copy.resolve()), "--out", str(out.resolve()), "--run", name]
        for name in names
    ]
    planned = _plan(copy, out)
    assert [(p["index"], p["name"], p["subset"], p["hparams"]) for p in planned] == [
        (i, n, n.split("--")[0], n.split("--")[1]) for i, n in enumerate(names)
    ]
    assert [p["command"] for p in planned] == lines
    assert not out.exists()  # a plan runs and writes nothing
    bare = runner.invoke(app, ["study", str(copy), "--plan"])
    assert "--out" not in bare.stdout and len(bare.stdout.splitlines()) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--run", "male--medium"],
            "--run male--medium: study 'tiny' has no such run; valid runs: "
            "all--slow, male--slow, female--slow, all--fast, male--fast, female--fast",
        ),
        (["--index", "6"], "--index 6: study 'tiny' has 6 runs, so give 0 to 5 (0=all--slow, 1="),
        (["--index", "-1"], "--index -1: study 'tiny' has 6 runs, so give 0 to 5"),
        (["--run", "all--slow", "--index", "0"], "--run and --index both name a run; give one"),
        (["--plan", "--index", "0"], "--plan only lists the runs; drop --index"),
        (["--plan", "--gather-only"], "--plan only lists the runs; drop --gather-only"),
        (["--run", "all--slow", "--gather-only"], "--run runs one run and --gather-only runs none"),
        (
            ["--plan", "--format", "md"],
            "--format md: --plan prints shell commands (the default) or",
        ),
        (
            ["--gather-only"],
            "--gather-only: 6 of 6 runs of study 'tiny' are not finished with its "
            "options (all--slow, male--slow, female--slow, all--fast, male--fast, female--fast); "
            "run each with --run NAME (see --plan), or drop --gather-only",
        ),
    ],
)
def test_cluster_mistakes_are_one_line_errors_that_run_nothing(
    study_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "study"
    result = runner.invoke(app, ["study", str(study_file), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_runs_in_concurrent_processes_then_a_gather_equal_the_serial_study(
    finished: Path, study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs in three processes at once (by --index and by a --plan line, sharing a fresh
    audio cache), then --gather-only: the same numbers and tables as one serial study of the
    same file. One hyper-parameter set keeps it to three processes on a 2-core machine."""
    fast = tmp_path / "fast.toml"
    head, tail = study_file.read_text().split("[hparams.slow]")
    fast.write_text(head + "[hparams.fast]" + tail.split("[hparams.fast]")[1])
    out, serial = tmp_path / "fast", tmp_path / "serial"
    planned = _plan(fast, out)
    assert [p["name"] for p in planned] == ["all--fast", "male--fast", "female--fast"]
    jobs = [["study", str(fast), "--out", str(out), "--index", "0"]]
    jobs += [shlex.split(str(p["command"]))[1:] for p in planned[1:]]
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(lambda argv: _asrfair(argv, tmp_path / "cache"), jobs))
    for result in done:
        assert result.returncode == 0, result.stderr
        assert "finished in" in result.stderr
    assert not (out / "study.json").exists()  # a single run writes no tables
    gathered = runner.invoke(app, ["study", str(fast), "--out", str(out), "--gather-only"])
    assert gathered.exit_code == 0, gathered.output
    monkeypatch.setenv("ASRFAIR_CACHE", str(finished.parent / "cache"))
    one = runner.invoke(app, ["study", str(fast), "--out", str(serial)])
    assert one.exit_code == 0, one.output
    for p in planned:
        ours = json.loads((out / "runs" / str(p["name"]) / "metrics.json").read_text())
        theirs = json.loads((serial / "runs" / str(p["name"]) / "metrics.json").read_text())
        for key in ("overall", "groups", "gaps"):
            assert ours[key] == theirs[key], (p["name"], key)
    assert json.loads((out / "study.json").read_text()) == json.loads(
        (serial / "study.json").read_text()
    )
    for name in ("study.md", "study.tex", "study.csv"):
        assert (out / name).read_text() == (serial / name).read_text(), name


HOLD = (
    "import sys\nfrom pathlib import Path\nfrom asrfair.runs import run_lock\n"
    "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    sys.stdin.read()\n"
)


def test_a_held_run_or_study_folder_is_a_one_line_error_naming_the_holder(
    finished: Path, study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds run male--slow: --run on it stops naming that process, and a
    plain study (which would run it) stops too, while another run of the study goes ahead."""
    monkeypatch.setenv("ASRFAIR_CACHE", str(finished.parent / "cache"))
    out = tmp_path / "tiny"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out / "runs" / "male--slow")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        base = ["study", str(study_file), "--out", str(out)]
        refused = runner.invoke(app, [*base, "--run", "male--slow"])
        assert refused.exit_code == 2, refused.output
        assert len(refused.stderr.strip().splitlines()) == 1
        assert f"runs/male--slow is in use by another asrfair process (pid {holder.pid} on" in (
            refused.stderr
        )
        other = runner.invoke(app, [*base, "--index", "2"])  # female--slow
        assert other.exit_code == 0, other.output
        assert (out / "runs" / "female--slow" / "metrics.json").is_file()
        assert not (out / "runs" / "male--slow" / "metrics.json").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_second_gather_of_one_study_folder_is_refused_naming_the_holder(
    study_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = runner.invoke(app, ["study", str(study_file), "--out", str(out)])
        assert refused.exit_code == 2, refused.output
        assert f"is in use by another asrfair process (pid {holder.pid} on" in refused.stderr
        assert not (out / "runs").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
