"""`asrfair audit` end to end, on a tiny Common Voice folder and a tiny real model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from asrfair import infer
from asrfair.cli import app
from asrfair.errors import AsrfairError
from asrfair.report import Report, report_tables
from asrfair.train import hold_out
from conftest import make_cv_release, make_tiny_model

runner = CliRunner()
FAST = [
    "--max-steps",
    "2",
    "--batch-size",
    "4",
    "--bootstrap",
    "200",
    "--permutations",
    "200",
    "--workers",
    "1",
    "--format",
    "json",
]


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cv_release(tmp_path_factory.mktemp("cv") / "fr", n_speakers=13, per_speaker=3)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def audit_args(cv: Path, model: Path, out: Path) -> list[str]:
    """The audit command line of these tests, before FAST and the options under test."""
    return ["audit", "--dataset", f"commonvoice:{cv}", "--model", str(model), "--out", str(out)]


def audit(cv: Path, model: Path, out: Path, *extra: str) -> dict[str, object]:
    result = runner.invoke(app, [*audit_args(cv, model, out), *FAST, *extra])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_audit_writes_the_whole_run_directory(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    data = audit(tiny_cv, tiny_model, out, "--train-subset", "female")
    for name in (
        "config.json",
        "splits/train.txt",
        "splits/test.txt",
        "splits/subset.txt",
        "model/model.safetensors",
        "model/vocab.json",
        "predictions.jsonl",
        "metrics.json",
        "report.md",
        "report.tex",
        "report.csv",
        "report.html",
    ):
        assert (out / name).is_file(), name
    assert not list((out / "checkpoints").glob("checkpoint-*"))  # finished: only model/ stays
    test_ids = (out / "splits/test.txt").read_text().split()
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert sorted(p["id"] for p in predictions) == sorted(test_ids)
    assert {"id", "speaker", "gender", "ref", "hyp", "w_sub", "w_n", "c_n"} <= set(predictions[0])
    subset = set((out / "splits/subset.txt").read_text().split())
    assert subset and not subset & set(test_ids)
    run = data["run"]  # type: ignore[index]
    assert run["train_subset"] == "female"  # type: ignore[index]
    assert [g["group"] for g in run["subset_size"]["gender"]] == ["female"]  # type: ignore[index]
    assert {"overall", "groups", "gaps", "method"} <= set(data)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == data
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["train"]["max_steps"] == 2
    assert set(config["versions"]) >= {"asrfair", "torch", "transformers"}
    report_md = (out / "report.md").read_text()
    assert "Training subset 'female' by gender" in report_md
    assert ", fine-tuned on the training subset |" in report_md  # the model row says so
    assert "bootstrap-t intervals from" in report_md


def test_test_set_is_identical_for_every_training_subset(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    tests = []
    for subset in ("male", "all"):
        audit(tiny_cv, tiny_model, tmp_path / subset, "--train-subset", subset)
        tests.append((tmp_path / subset / "splits/test.txt").read_text())
    assert tests[0] == tests[1] and tests[0].strip()


def test_eval_steps_hold_out_training_speakers_and_log_the_gap_per_evaluation(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asrfair import pipeline as audit_stage

    held: list[str] = []

    def spy(subset: object, groupings: object, seed: int) -> object:
        train_rows, eval_rows = hold_out(subset, groupings, seed)  # type: ignore[arg-type]
        held.extend(eval_rows["id"])
        return train_rows, eval_rows

    monkeypatch.setattr(audit_stage, "hold_out", spy)
    args = [*audit_args(tiny_cv, tiny_model, tmp_path / "eval"), *FAST, "--eval-steps", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step 1: eval WER" in result.stderr and "step 2: eval WER" in result.stderr
    assert "gender=female" in result.stderr and "gap gender" in result.stderr
    test_ids = set((tmp_path / "eval" / "splits/test.txt").read_text().split())
    train_ids = set((tmp_path / "eval" / "splits/train.txt").read_text().split())
    assert held and set(held) <= train_ids and not set(held) & test_ids
    assert (tmp_path / "eval" / "splits/eval.txt").read_text().split() == sorted(held)
    warnings = json.loads(result.stdout)["warnings"]
    assert any(w.startswith(f"--eval-steps held out {len(held)} of the subset") for w in warnings)
    audit(tiny_cv, tiny_model, tmp_path / "plain")  # without --eval-steps: the same test set
    assert (tmp_path / "plain" / "splits/test.txt").read_text().split() == sorted(test_ids)


def test_no_train_audits_the_checkpoint_as_it_is(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    data = audit(tiny_cv, tiny_model, tmp_path / "run", "--no-train")
    assert not (tmp_path / "run" / "model").exists()
    assert data["run"]["no_train"] is True  # type: ignore[index]
    run, *scores = report_tables(Report("audit", data))
    assert run.rows[0] == ["model", f"{tiny_model} as it is"]
    assert not [t for t in scores if t.title.startswith("Training subset")]  # nothing trained


def test_the_bundled_checkpoint_is_reported_by_name_not_by_local_path(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """A report is shared (report.html): the demo checkpoint must not name this machine's path."""
    bundled = tmp_path / "site" / "asrfair" / "demo" / "model"
    shutil.copytree(tiny_model, bundled)
    data = audit(tiny_cv, bundled, tmp_path / "run", "--no-train")
    assert data["run"]["model"] == "asrfair:demo-model"  # type: ignore[index]
    assert data["config"]["model"] == "asrfair:demo-model"  # type: ignore[index]
    assert str(tmp_path) not in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_interrupted_inference_resumes_without_redoing_utterances(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    seen: list[int] = []
    real_start = infer.Transcriber.start

    def killed_after_one_batch(self: infer.Transcriber, batch: infer.PaddedBatch) -> object:
        if seen:
            raise KeyboardInterrupt
        seen.append(len(batch))
        return real_start(self, batch)

    monkeypatch.setattr(infer.Transcriber, "start", killed_after_one_batch)
    args = [
        *audit_args(tiny_cv, tiny_model, out),
        "--batch-seconds",
        "3",
        *FAST,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert f"continue with --resume --out {out}" in result.stderr
    first = (out / "predictions.jsonl").read_text().splitlines()
    assert len(first) == seen[0] >= 1  # the batch before the interruption was written

    done_later: list[int] = []

    def counting(self: infer.Transcriber, batch: infer.PaddedBatch) -> object:
        done_later.append(len(batch))
        return real_start(self, batch)

    monkeypatch.setattr(infer.Transcriber, "start", counting)
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    n_test = len((out / "splits/test.txt").read_text().split())
    assert sum(done_later) == n_test - len(first)  # nothing transcribed twice
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first and len(lines) == n_test
    # The report's timings cover both invocations, not only the one that found a model, and
    # the interrupted inference counts: its predictions were kept.
    runs = json.loads((out / "timings.json").read_text())["invocations"]
    assert len(runs) == 2 and runs[0]["train_s"] > 0 and runs[0]["infer_s"] > 0
    timings = json.loads((out / "metrics.json").read_text())["run"]["timings"]
    assert timings["invocations"] == 2
    assert timings["train_s"] == round(runs[0]["train_s"] + runs[1]["train_s"], 2)
    assert timings["infer_s"] == round(runs[0]["infer_s"] + runs[1]["infer_s"], 2)


def test_out_folder_of_another_configuration_is_refused(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    audit(tiny_cv, tiny_model, out)
    args = [
        *audit_args(tiny_cv, tiny_model, out),
        *FAST,
    ]
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "already holds a run; add --resume to continue it" in again.stderr
    other = runner.invoke(app, [*args, "--resume", "--train-subset", "male"])
    assert other.exit_code == 2
    assert re.search(r'other options \(stored -> now: train_subset "\w+" -> "male"\)', other.stderr)
    same = runner.invoke(app, [*args, "--resume", "--bootstrap", "200"])
    assert same.exit_code == 0, same.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train-subset", "accents=de"], "--train-subset 'accents=de' selects no rows"),
        (["--batch-size", "64"], "fewer than one batch (--batch-size 64)"),
        (["--model", "/nonexistent/model"], "--model /nonexistent/model: no such folder; check"),
        (["--model", "someone/no-such-model"], "hub is unreachable"),
        (["--train-subset", "mal"], "unknown subset 'mal'; known: "),
    ],
)
def test_audit_bad_input(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = [
        *audit_args(tiny_cv, tiny_model, tmp_path / "r"),
    ]
    result = runner.invoke(app, [*args, *FAST, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_test_characters_missing_from_the_vocabulary_are_counted(
    tiny_cv: Path, tmp_path: Path
) -> None:
    from transformers import Wav2Vec2ForCTC

    from asrfair.train import build_vocab, make_processor

    model = make_tiny_model(tmp_path / "m")
    processor = make_processor(build_vocab(["il a dit"]), tmp_path / "m", "layer")
    net = Wav2Vec2ForCTC.from_pretrained(
        str(model), vocab_size=len(processor.tokenizer), ignore_mismatched_sizes=True
    )
    net.save_pretrained(str(model))
    processor.save_pretrained(str(model))
    data = audit(tiny_cv, model, tmp_path / "run", "--no-train")
    unk = [w for w in data["warnings"] if "[UNK]" in w]  # type: ignore[attr-defined]
    assert unk and unk[0].endswith("read as [UNK]: bfjnorsu")


def test_two_cpu_processes_train_and_rank0_alone_writes(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "ASRFAIR_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-port", "29517", "-m", "asrfair"]
    cmd = [*launcher, *audit_args(tiny_cv, tiny_model, out), "--device", "cpu", *FAST]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"overall"') == 1  # one report: rank 0's
    lines = (out / "predictions.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted((out / "splits/test.txt").read_text().split())  # merged, once each
    assert not list(out.glob("predictions.rank*.jsonl"))
    assert (out / "model" / "model.safetensors").is_file()
    assert not list(out.glob("checkpoints/checkpoint-*"))  # cleaned after the final save


def test_killed_training_resumes_from_its_last_checkpoint(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import Trainer, TrainerCallback

    from asrfair import train as train_module

    class KillAtStep3(TrainerCallback):
        def on_step_end(self, args: object, state: object, control: object, **kw: object) -> None:
            if state.global_step == 3:  # type: ignore[attr-defined]
                raise KeyboardInterrupt

    real_callbacks = train_module._callbacks
    monkeypatch.setattr(train_module, "_callbacks", lambda: [*real_callbacks(), KillAtStep3()])
    out = tmp_path / "run"
    args = [
        *audit_args(tiny_cv, tiny_model, out),
        *FAST,
        "--max-steps",
        "4",
        "--save-steps",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert (out / "checkpoints" / "checkpoint-2").is_dir()

    monkeypatch.setattr(train_module, "_callbacks", real_callbacks)
    resumed_from: list[object] = []
    real_train = Trainer.train

    def spy(self: Trainer, *a: object, **kw: object) -> object:
        resumed_from.append(kw.get("resume_from_checkpoint"))
        return real_train(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Trainer, "train", spy)
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert resumed_from == [str(out / "checkpoints" / "checkpoint-2")]
    assert f"resuming training from {out / 'checkpoints' / 'checkpoint-2'}" in result.stderr
    assert (out / "model" / "model.safetensors").is_file()


# Reduced precision against fp32 ------------------------------------------------------------------
# The bundled demo checkpoint on the demo's first test clips. With the CUDA path's bf16 model (its
# weights cast) run on the CPU, the two transcriptions differ in 0.2% of characters (0.4% under
# bf16 autocast, 0.1% under fp16 autocast); a broken reduced-precision path (NaN or overflowed
# logits, inputs or weights cast too far) is far above.
PRECISION_CLIPS = 48
PRECISION_CER_BOUND = 0.02


def precision_comparison(device: torch.device) -> tuple[float, list[torch.dtype], int]:
    """Transcribe the same clips with the same model in fp32 and in the Transcriber's default,
    mixed precision (what ``asrfair audit`` runs).

    Returns the CER of the mixed transcription against the fp32 one, the dtype of the CTC head's
    output in each pass (fp32 first), and the number of fp32 characters.
    """
    import pandas as pd
    from transformers import Wav2Vec2ForCTC

    from asrfair.audio import decode
    from asrfair.audit_options import demo_model
    from asrfair.default_plugins.datasets import demo_path
    from asrfair.models import load_processor
    from asrfair.scoring import edit_counts

    names = pd.read_csv(demo_path() / "test.tsv", sep="\t")["path"][:PRECISION_CLIPS]
    waves = [decode(demo_path() / "clips" / name) for name in names]
    processor = load_processor(demo_model())
    net = Wav2Vec2ForCTC.from_pretrained(demo_model())
    head_dtypes: list[torch.dtype] = []
    net.lm_head.register_forward_hook(lambda module, args, out: head_dtypes.append(out.dtype))
    # A true fp32 reference: no TF32 in cuDNN convolutions or cuBLAS matmuls (mere flags on CPU).
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fp32 = infer.Transcriber(net, processor, device, mixed_precision=False)(waves)
        mixed = infer.Transcriber(net, processor, device)(waves)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert len(fp32) == len(mixed) == PRECISION_CLIPS
    errors = sum(sum(edit_counts(a, b)[:3]) for a, b in zip(fp32, mixed, strict=True))
    n_chars = sum(len(text) for text in fp32)
    return errors / max(n_chars, 1), head_dtypes, n_chars


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device: mixed precision (bf16/fp16 autocast) only runs on CUDA",
)
def test_gpu_inference_in_bf16_matches_fp32() -> None:
    reduced = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cer, head_dtypes, n_chars = precision_comparison(torch.device("cuda"))
    # the second pass really ran in reduced precision, the dtype infer.reduced_dtype picks
    assert head_dtypes == [torch.float32, reduced]
    assert n_chars > 1000  # the model transcribes: two empty outputs would agree trivially
    assert cer < PRECISION_CER_BOUND, f"{reduced} differs from fp32 in {cer:.2%} of characters"


def test_precision_comparison_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU test's comparison, with the CUDA path's bf16 model (its weights cast) run on the
    CPU, checked everywhere."""
    monkeypatch.setattr(infer, "reduced_dtype", lambda device: torch.bfloat16)
    cer, head_dtypes, n_chars = precision_comparison(torch.device("cpu"))
    assert head_dtypes == [torch.float32, torch.bfloat16]
    assert n_chars > 1000
    assert cer < PRECISION_CER_BOUND, f"bf16 differs from fp32 in {cer:.2%} of characters"


# Seeds, --config and asrfair.audit() ------------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _vary_word_errors(predictions: Path) -> None:
    """The tiny model gets every word of every speaker wrong, so any bootstrap interval of its
    WER is [1, 1]; give the utterances different word error counts, so that draws matter."""
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    for i, record in enumerate(records):
        record["w_sub"], record["w_del"], record["w_ins"] = i % (record["w_n"] + 1), 0, 0
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_another_stats_seed_rescores_the_same_predictions_without_transcribing(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enough test speakers (20) that two seeds' bootstrap quantiles cannot coincide.
    cv = make_cv_release(tmp_path / "cv" / "fr", n_speakers=40, per_speaker=2)
    out = tmp_path / "run"
    options = ["--no-train", "--interval", "bootstrap-t", "--test-fraction", "0.5"]
    audit(cv, tiny_model, out, *options)
    _vary_word_errors(out / "predictions.jsonl")
    predictions = (out / "predictions.jsonl").read_text()
    test_ids = (out / "splits/test.txt").read_text()

    def no_inference(*args: object) -> None:
        raise AssertionError("a finished run was transcribed again")

    monkeypatch.setattr(infer.Transcriber, "start", no_inference)
    first = audit(cv, tiny_model, out, *options, "--resume")
    second = audit(cv, tiny_model, out, *options, "--resume", "--stats-seed", "7")
    assert (out / "predictions.jsonl").read_text() == predictions
    assert (out / "splits/test.txt").read_text() == test_ids
    overall = first["overall"], second["overall"]
    assert overall[0]["wer"] == overall[1]["wer"]  # type: ignore[index]
    assert overall[0]["wer_ci"] != overall[1]["wer_ci"]  # type: ignore[index]
    assert (first["method"]["seed"], second["method"]["seed"]) == (0, 7)  # type: ignore[index]
    assert _json(out / "config.json")["seeds"] == {"split": 0, "train": 0, "stats": 7}


def test_seed_sets_all_three_seeds_and_each_overrides_it(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    one = audit(tiny_cv, tiny_model, tmp_path / "one", "--train-subset", "half", "--seed", "3")
    three = ["--split-seed", "3", "--train-seed", "3", "--stats-seed", "3"]
    each = audit(tiny_cv, tiny_model, tmp_path / "each", "--train-subset", "half", *three)
    configs = [_json(tmp_path / name / "config.json") for name in ("one", "each")]
    assert configs[0]["options"] == configs[1]["options"]
    assert configs[0]["seeds"] == {"split": 3, "train": 3, "stats": 3}
    for name in ("test.txt", "subset.txt"):
        assert (tmp_path / "one/splits" / name).read_text() == (
            tmp_path / "each/splits" / name
        ).read_text()
    assert one["overall"] == each["overall"] and one["groups"] == each["groups"]

    from asrfair.audit_options import resolve_audit

    plan = resolve_audit({"seed": 1, "stats_seed": 2})
    assert plan.seeds() == {"split": 1, "train": 1, "stats": 2}


def test_a_run_written_with_one_seed_still_resumes_reports_and_compares(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """config.json before the seeds were separated: options.seed, a top-level seed."""
    for name in ("old", "new"):
        audit(tiny_cv, tiny_model, tmp_path / name, "--no-train")
    config_path = tmp_path / "old" / "config.json"
    config = _json(config_path)
    config["options"]["seed"] = config["options"].pop("split_seed")
    config["seed"] = config.pop("seeds")["split"]
    config_path.write_text(json.dumps(config))
    args = [*audit_args(tiny_cv, tiny_model, tmp_path / "old"), *FAST, "--no-train", "--resume"]
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    config_path.write_text(json.dumps(config))  # the resume rewrote it in the new form
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    for argv in (["report", old, "-f", "json"], ["compare", old, new, "-f", "json"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overall"]["wer"]["diff"] == 0.0


def _docs_config(tmp_path: Path) -> Path:
    """The example config file of docs/audit.md, as a user would save it."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "audit.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "audit.toml"
    path.write_text(block)
    return path


def test_the_docs_config_file_parses_and_runs_with_overrides(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from asrfair.audit_options import resolve_audit

    path = _docs_config(tmp_path)
    plan = resolve_audit({}, config=path)
    assert plan.options.train_subset == "female" and plan.options.train.max_steps == 300
    assert plan.seeds() == {"split": 1, "train": 1, "stats": 7}
    assert plan.settings.stats.n_boot == 10_000
    # The command line overrides the file: here a tiny corpus and model, no training.
    out = tmp_path / "run"
    data = audit(tiny_cv, tiny_model, out, "--config", str(path), "--no-train", "--seed", "2")
    config = _json(out / "config.json")
    assert config["options"]["train_subset"] == "female"
    assert config["options"]["train"]["max_steps"] == 2  # FAST's --max-steps beat the file's
    assert config["seeds"] == {"split": 2, "train": 2, "stats": 2}  # --seed beats every seed
    assert data["method"]["draws"] == 200  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lerning-rate = 1e-3\n", "unknown option 'lerning-rate'; known: dataset, model"),
        ("[train]\nbootstrap = 10\n", "[train]: unknown key 'bootstrap'; known: epochs"),
        ("bootstrap = 'many'\n", "bootstrap must be int, not 'many'"),
        ("[statistics]\nbootstrap = 5\n", "--bootstrap 5: use"),
        ("seed = -1\n", "bad.toml: --seed -1: use a seed of 0 or more"),
        ("dataset = \n", "not valid TOML"),
    ],
)
def test_config_file_mistakes_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["audit", "--config", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_the_python_api_runs_the_cli_audit(tiny_cv: Path, tiny_model: Path, tmp_path: Path) -> None:
    import asrfair

    cli = audit(tiny_cv, tiny_model, tmp_path / "cli", "--no-train", "--groups", "gender")
    result = asrfair.audit(
        f"commonvoice:{tiny_cv}",
        model=str(tiny_model),
        groups=["gender"],
        out=tmp_path / "api",
        no_train=True,
        max_steps=2,
        batch_size=4,
        bootstrap=200,
        permutations=200,
        workers=1,
    )
    assert isinstance(result, asrfair.ScoreResult)
    stored = _json(tmp_path / "api" / "metrics.json")
    assert result.report.data == stored
    assert stored["overall"] == cli["overall"] and stored["groups"] == cli["groups"]
    assert stored["gaps"] == cli["gaps"]
    assert list(result.by_group["group"]) == ["female", "male"]
    configs = [_json(tmp_path / name / "config.json") for name in ("cli", "api")]
    assert configs[0]["options"] == configs[1]["options"]
    with pytest.raises(AsrfairError, match=r"asrfair.audit\(\): unknown option 'lerning_rate'"):
        asrfair.audit(lerning_rate=1e-3, out=tmp_path / "bad")


def test_an_in_memory_dataset_is_audited_and_named_by_its_fingerprint(
    tiny_cv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """asrfair.audit(dataset=Dataset): the same rows as the Common Voice folder they came from,
    saved once under the cache and recorded as an hf: folder that a resume can read again."""
    import datasets

    import asrfair

    table = pd.read_csv(tiny_cv / "validated.tsv", sep="\t", dtype=str, keep_default_na=False)
    ds = datasets.Dataset.from_dict(
        {
            "id": [Path(p).stem for p in table["path"]],
            "audio": [str(tiny_cv / "clips" / p) for p in table["path"]],
            "sentence": table["sentence"].tolist(),
            "client_id": table["client_id"].tolist(),
            "gender": table["gender"].tolist(),
        }
    )
    common = {"model": str(tiny_model), "groups": ["gender"], "no_train": True}
    common |= {"bootstrap": 200, "permutations": 200, "workers": 1}
    from_ds = asrfair.audit(ds, out=tmp_path / "ds", **common)
    from_cv = asrfair.audit(f"commonvoice:{tiny_cv}", out=tmp_path / "cv", **common)
    assert from_ds is not None and from_cv is not None
    spec = _json(tmp_path / "ds" / "config.json")["options"]["dataset"]
    assert spec.startswith("hf:") and Path(spec[3:]).is_dir()
    assert from_ds.overall["n_utterances"] == from_cv.overall["n_utterances"]
    assert from_ds.overall["n_speakers"] == from_cv.overall["n_speakers"]
    again = asrfair.audit(ds, out=tmp_path / "ds", resume=True, **common)  # the same folder
    assert again is not None and again.report.data["overall"] == from_ds.report.data["overall"]


def test_a_run_stored_before_the_scale_options_still_resumes(tmp_path: Path) -> None:
    from asrfair.audit_options import AuditOptions
    from asrfair.runs import check_run_dir

    identity = AuditOptions().identity()
    old = json.loads(json.dumps(identity))
    old["train"].pop("device_batch", None)
    (tmp_path / "config.json").write_text(json.dumps({"options": old}))
    check_run_dir(tmp_path, identity, True, AuditOptions.default_identity())


@pytest.mark.parametrize("stored", [True, False])
def test_resuming_with_other_training_settings_is_not_refused(tmp_path: Path, stored: bool) -> None:
    """Checkpoint limits, time-based saves, loader workers and the device batch say how a run
    trains, not what it learns: a config.json that stored them among its options (as runs did
    before they became settings), with other values, or without them, still resumes."""
    from asrfair.audit_options import AuditOptions
    from asrfair.hparams import SETTINGS, TrainConfig
    from asrfair.runs import check_run_dir

    assert set(SETTINGS) == {
        "save_total_limit",
        "save_minutes",
        "dataloader_workers",
        "device_batch",
    }
    old = json.loads(json.dumps(AuditOptions().identity()))
    if stored:
        old["train"] |= {"save_total_limit": 5, "save_minutes": 3.0, "dataloader_workers": 2}
    (tmp_path / "config.json").write_text(json.dumps({"options": old}))
    now = AuditOptions(train=TrainConfig(save_total_limit=1, dataloader_workers=4, device_batch=4))
    check_run_dir(tmp_path, now.identity(), True, AuditOptions.default_identity())
    other = AuditOptions(train=TrainConfig(batch_size=4))  # an identity option still refuses
    with pytest.raises(AsrfairError, match=r"train\.batch_size 8 -> 4"):
        check_run_dir(tmp_path, other.identity(), True, AuditOptions.default_identity())
