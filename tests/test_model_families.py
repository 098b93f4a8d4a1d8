"""Every model family end to end through `asrfair audit`, on tiny random checkpoints built here
from configs and saved with their processors (the real ``from_pretrained`` path, no hub):
HuBERT, WavLM and Data2Vec-audio CTC, an MMS-style wav2vec2 with language adapters, and
Whisper; the refusals of options a checkpoint cannot take; Whisper's normalisers."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from asrfair import infer
from asrfair.cli import app
from asrfair.errors import AsrfairError
from asrfair.hparams import TrainConfig
from asrfair.models import ModelChoice, load_transcriber
from asrfair.scoring import COUNT_COLUMNS, utterance_counts
from asrfair.train import checkpoint_vocab, load_model
from conftest import make_cv_release, make_tiny_mms, make_tiny_model, make_tiny_whisper
from test_audit import FAST, audit, audit_args, runner

WHISPER = ["--no-train", "--max-seconds", "30", "--normalizer", "whisper-basic"]
FAMILIES = {  # name: (how to build it, the options its audit needs)
    "hubert": (lambda d: make_tiny_model(d, "group", family="hubert"), ["--no-train"]),
    "wavlm": (lambda d: make_tiny_model(d, family="wavlm"), ["--no-train"]),
    "data2vec-audio": (lambda d: make_tiny_model(d, family="data2vec-audio"), ["--no-train"]),
    "mms": (make_tiny_mms, ["--no-train", "--adapter", "fra"]),
    "whisper": (make_tiny_whisper, [*WHISPER, "--language", "fr", "--max-new-tokens", "8"]),
}


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cv_release(tmp_path_factory.mktemp("cv") / "fr", n_speakers=13, per_speaker=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    built = {name: make(root / name) for name, (make, _) in FAMILIES.items()}
    built["wav2vec2"] = make_tiny_model(root / "wav2vec2")
    built["whisper.en"] = make_tiny_whisper(root / "whisper.en", multilingual=False)
    return built


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRFAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def assert_complete_run(out: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """One prediction per test utterance, counts that are the edit counts of its ref and hyp,
    and a metrics.json whose overall WER is those counts' total."""
    records = _records(out)
    assert sorted(r["id"] for r in records) == sorted((out / "splits/test.txt").read_text().split())
    for record in records:
        assert tuple(record[c] for c in COUNT_COLUMNS) == utterance_counts(
            record["ref"], record["hyp"]
        )
    errors = sum(r["w_sub"] + r["w_del"] + r["w_ins"] for r in records)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == data
    assert metrics["overall"]["wer"] == pytest.approx(errors / sum(r["w_n"] for r in records))
    assert metrics["overall"]["n_utterances"] == len(records)
    return records


@pytest.mark.parametrize("family", list(FAMILIES))
def test_no_train_audit_of_each_model_family(
    family: str, tiny_cv: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    data = audit(tiny_cv, models[family], out, *FAMILIES[family][1])
    records = assert_complete_run(out, data)
    assert any(r["hyp"] for r in records)  # the random model writes something
    assert data["run"]["model_kind"] == ("seq2seq" if family == "whisper" else "ctc")
    assert not (out / "model").exists()


def test_whisper_generates_in_batches_with_the_given_language_task_and_bound(
    tiny_cv: Path, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import WhisperForConditionalGeneration

    calls: list[tuple[int, dict[str, Any]]] = []
    real = WhisperForConditionalGeneration.generate

    @functools.wraps(real)  # the preflight reads generate's signature
    def spy(self: Any, input_features: torch.Tensor, **kw: Any) -> Any:
        calls.append((len(input_features), kw))
        return real(self, input_features, **kw)

    monkeypatch.setattr(WhisperForConditionalGeneration, "generate", spy)
    extra = ["--language", "french", "--task", "translate", "--max-new-tokens", "5"]
    audit(tiny_cv, models["whisper"], tmp_path / "run", *WHISPER, *extra, "--batch-seconds", "8")
    assert len(calls) > 1 and max(n for n, _ in calls) > 1  # several batches of several clips
    assert all(
        {k: kw.get(k) for k in ("language", "task", "max_new_tokens")}
        == {"language": "french", "task": "translate", "max_new_tokens": 5}
        for _, kw in calls
    )
    assert all(len(r["hyp"].replace(" ", "")) <= 5 * 3 for r in _records(tmp_path / "run"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())["options"]
    assert (config["language"], config["task"], config["max_new_tokens"]) == (
        "french",
        "translate",
        5,
    )


def test_whisper_batches_transcribe_as_clips_one_at_a_time(models: dict[str, Path]) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 40_000, 8_000)]
    choice = ModelChoice(str(models["whisper"]), language="fr", max_new_tokens=10)
    transcribe = load_transcriber(choice, torch.device("cpu"))
    batched = transcribe(waves)
    assert batched == [transcribe([w])[0] for w in waves]
    assert len(set(batched)) > 1  # the audio, not the prompt alone, decides the text
    other = load_transcriber(
        ModelChoice(choice.path, language="en", max_new_tokens=10), torch.device("cpu")
    )
    assert other(waves) != batched  # --language reaches the prompt


def test_seq2seq_transcripts_go_through_the_normaliser(
    tiny_cv: Path, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def shouting(self: infer.Seq2SeqTranscriber, waves: list[object]) -> list[str]:
        return ["Il a DIT, « bonjour » !"] * len(waves)

    monkeypatch.setattr(infer.Seq2SeqTranscriber, "start", shouting)
    audit(tiny_cv, models["whisper"], tmp_path / "run", *WHISPER)
    assert {r["hyp"] for r in _records(tmp_path / "run")} == {"il a dit bonjour"}


def test_hubert_fine_tunes_and_its_model_transcribes(
    tiny_cv: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoConfig

    out = tmp_path / "run"
    data = audit(tiny_cv, models["hubert"], out)
    assert AutoConfig.from_pretrained(out / "model").model_type == "hubert"
    assert data["run"]["trained_model"] == str(out / "model")
    assert_complete_run(out, data)


def test_mms_fine_tuning_starts_from_the_language_adapter(models: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    mms = str(models["mms"])
    vocab = checkpoint_vocab(mms, "fra")
    assert vocab is not None and len(vocab) == 26 + 3  # fra's table, not eng's nor the nesting
    net = load_model(mms, vocab, TrainConfig(), reinit_head=False, adapter="fra")
    adapter = load_file(str(models["mms"] / "adapter.fra.safetensors"))
    assert torch.equal(net.lm_head.weight, adapter["lm_head.weight"])
    layer = "wav2vec2.encoder.layers.0.adapter_layer.linear_1.weight"
    assert torch.equal(net.state_dict()[layer], adapter[layer])
    fresh = load_model(
        mms, {**vocab, "ü": len(vocab)}, TrainConfig(), reinit_head=True, adapter="fra"
    )
    assert fresh.lm_head.out_features == len(vocab) + 1 == fresh.config.vocab_size


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        (
            "whisper",
            ["--max-seconds", "30"],
            "is a sequence-to-sequence model (whisper); asrfair "
            "fine-tunes CTC models only: add --no-train",
        ),
        ("wav2vec2", ["--no-train", "--language", "fr"], "--language fr: --model"),
        ("wav2vec2", ["--no-train", "--max-new-tokens", "9"], "takes no max_new_tokens"),
        ("wav2vec2", ["--adapter", "fra"], "has no language adapters (config.adapter_attn_dim"),
        ("mms", ["--adapter", "deu"], "no adapter.deu.safetensors; its adapters: eng, fra"),
        (
            "mms",
            ["--no-train"],
            "one vocabulary per language (eng, fra); choose one with --adapter",
        ),
        ("whisper", [*WHISPER, "--language", "de"], "does not know it; its languages: en, fr"),
        ("whisper", ["--no-train"], "reads at most 30 s of audio per clip; add --max-seconds 30"),
        ("whisper", [*WHISPER, "--adapter", "fra"], "without language adapters; drop --adapter"),
        ("whisper", [*WHISPER, "--task", "summarise"], "--task summarise: use transcribe or"),
        ("whisper", [*WHISPER, "--max-new-tokens", "61"], "use --max-new-tokens 60 or less"),
        ("whisper.en", [*WHISPER, "--language", "fr"], "is not multilingual; drop --language"),
        ("whisper.en", [*WHISPER, "--task", "transcribe"], "is English-only and takes no task"),
    ],
)
def test_options_the_checkpoint_cannot_take_are_refused_before_the_run(
    tiny_cv: Path,
    models: dict[str, Path],
    tmp_path: Path,
    model: str,
    extra: list[str],
    message: str,
) -> None:
    result = runner.invoke(
        app, [*audit_args(tiny_cv, models[model], tmp_path / "r"), *FAST, *extra]
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_run_stored_before_the_model_options_still_resumes(
    tiny_cv: Path, models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    audit(tiny_cv, models["wav2vec2"], out, "--no-train")
    config = json.loads((out / "config.json").read_text())
    for key in ("adapter", "language", "task", "max_new_tokens"):
        del config["options"][key]
    (out / "config.json").write_text(json.dumps(config))
    args = [*audit_args(tiny_cv, models["wav2vec2"], out), *FAST, "--no-train", "--resume"]
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "config.json").read_text())["options"]["adapter"] == ""
    # an option given now that the stored run did not use is still a different run
    (out / "config.json").write_text(json.dumps(config))
    other = runner.invoke(
        app, [*args[:-1], "--model", str(models["mms"]), "--adapter", "fra", "--resume"]
    )
    assert other.exit_code == 2 and 'adapter "" -> "fra"' in other.stderr


# --- Whisper's normalisers ----------------------------------------------------------------------
def test_whisper_english_uses_the_checkpoints_spelling_table(tmp_path: Path) -> None:
    from asrfair.plugins import installed
    from asrfair.text import for_checkpoint

    english = installed().normalizers().get("whisper-english")
    text = "Mr. Smith's colour TV cost $20, didn't it?"
    assert english(text) == "mister smith is colour tv cost $20 did not it"
    (tmp_path / "normalizer.json").write_text(json.dumps({"colour": "color"}))
    assert (
        for_checkpoint(english, str(tmp_path))(text)
        == "mister smith is color tv cost $20 did not it"
    )
    assert for_checkpoint(english, str(tmp_path / "none")) is english  # no table: as it was
    basic = installed().normalizers().get("whisper-basic")
    assert basic("Héllo, World! (aside) [noise]") == "héllo world"
    assert for_checkpoint(basic, str(tmp_path)) is basic


def test_scoring_with_a_whisper_normaliser_loads_no_torch(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,speaker,ref,hyp\nu1,s1,The colour!,the colour\n")
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom asrfair.cli import app\n"
        "result = CliRunner().invoke(app, sys.argv[1:])\n"
        "assert result.exit_code == 0, result.output\nprint(result.stdout)\n"
        "print(sorted(m for m in ('torch', 'accelerate') if m in sys.modules))"
    )
    args = ["score", str(tmp_path / "t.csv"), "--normalizer", "whisper-english", "-f", "json"]
    run = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert json.loads("\n".join(lines[:-1]))["overall"]["wer"] == 0.0


def test_a_missing_adapter_is_a_one_line_error_when_loading(models: dict[str, Path]) -> None:
    with pytest.raises(AsrfairError, match=r"--adapter deu: --model .*mms could not load it"):
        load_transcriber(ModelChoice(str(models["mms"]), adapter="deu"), torch.device("cpu"))
