"""The Hugging Face integrations: the shipped `evaluate` metric, and GroupWER as a Trainer's
compute_metrics, on a tiny Wav2Vec2ForCTC built from a config (no hub)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import asrfair
from asrfair.audio import write_clip
from asrfair.errors import AsrfairError
from asrfair.hf import GroupWER, fairness_scores
from asrfair.hparams import TrainConfig
from asrfair.models import load_processor
from asrfair.train import eval_line, fine_tune, hold_out, load_model, training_table
from conftest import make_tiny_model

HYPS = ["le chat", "le chien dort", "un chat", "le", "la maison bleue", "le chat noir"]
REFS = ["le chat", "le chien dort", "le chat", "le chat", "la maison", "le chat noir"]
SPEAKERS = ["s1", "s1", "s2", "s3", "s4", "s4"]
GENDER = ["female", "female", "female", "male", "male", "male"]


def _evaluate() -> ModuleType:
    """evaluate is the [evaluate] extra; CI installs it (the test extra), so there it must load."""
    if importlib.util.find_spec("evaluate") is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must install the test extra, which includes evaluate")
        pytest.skip("evaluate is not installed (pip install 'asrfair[evaluate]')")
    import evaluate

    return evaluate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_evaluate_metric_loads_offline_and_matches_asrfair_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    evaluate = _evaluate()
    metric = evaluate.load(asrfair.evaluate_path(), cache_dir=str(tmp_path))
    got = metric.compute(
        predictions=HYPS,
        references=REFS,
        speakers=SPEAKERS,
        groups=GENDER,
        grouping="gender",
        bootstrap=300,
        seed=3,
    )
    frame = (
        pd.DataFrame({"ref": REFS, "hyp": HYPS, "speaker": SPEAKERS, "gender": GENDER})
        .rename_axis("id")
        .reset_index()
    )
    expected = asrfair.score(
        frame, groups="gender", speaker="speaker", bootstrap=300, permutations=0, seed=3
    ).by_group.set_index("group")
    for group in ("female", "male"):
        for rate in ("wer", "cer"):
            key = f"{rate}_gender={group}"
            assert got[key] == pytest.approx(expected.loc[group, rate])
            assert got[f"{key}_low"] == pytest.approx(expected.loc[group, f"{rate}_low"])
            assert got[f"{key}_high"] == pytest.approx(expected.loc[group, f"{rate}_high"])
    # counted by hand: female 1 substitution in 7 words; male 1 deletion + 1 insertion in 7
    assert got["wer_gender=female"] == pytest.approx(1 / 7)
    assert got["wer_gender=male"] == pytest.approx(2 / 7)
    assert got["gap_gender"] == pytest.approx(2 / 7 - 1 / 7)
    assert got["wer"] == pytest.approx(3 / 14)
    assert got["wer_low"] is not None and got["wer_low"] <= got["wer"] <= got["wer_high"]


def test_fairness_scores_names_the_inputs_whose_lengths_differ() -> None:
    with pytest.raises(AsrfairError, match=r"differ in length: ref 6, hyp 5, gender 6"):
        fairness_scores(HYPS[:5], REFS, {"gender": GENDER}, SPEAKERS)


def _eval_prediction(processor: object, texts: list[str], pad_frames: int) -> SimpleNamespace:
    """Logits whose argmax spells each text (one frame per character, blanks between), padded
    the way Trainer concatenates batches: -100 frames and -100 labels."""
    tok = processor.tokenizer  # type: ignore[attr-defined]
    vocab = tok.get_vocab()
    rows = []
    for text in texts:
        frames = []
        for ch in text.replace(" ", "|"):
            frames += [vocab[ch], tok.pad_token_id]
        rows.append(frames)
    width = max(map(len, rows)) + pad_frames
    logits = np.full((len(texts), width, len(vocab)), -100.0, dtype=np.float32)
    for i, frames in enumerate(rows):
        for t, token in enumerate(frames):
            logits[i, t] = 0.0
            logits[i, t, token] = 5.0
    labels = [tok(text).input_ids for text in REFS]
    label_ids = np.full((len(labels), max(map(len, labels))), -100)
    for i, ids in enumerate(labels):
        label_ids[i, : len(ids)] = ids
    return SimpleNamespace(predictions=logits, label_ids=label_ids)


def test_group_wer_decodes_ctc_logits_and_reports_each_group_and_the_gap(tiny: Path) -> None:
    processor = load_processor(str(tiny))
    compute = GroupWER(processor, {"gender": GENDER}, SPEAKERS)
    got = compute(_eval_prediction(processor, HYPS, pad_frames=7))
    assert got == pytest.approx(
        {
            "wer": 3 / 14,
            "wer_gender=female": 1 / 7,
            "wer_gender=male": 2 / 7,
            "gap_gender": 2 / 7 - 1 / 7,
        }
    )


def test_group_wer_takes_token_ids_as_hf_ctc_examples_hand_them(tiny: Path) -> None:
    """preprocess_logits_for_metrics=argmax (HF's CTC example) hands over ids, not logits:
    decoded as ids they give the same rates, never a silent 100% WER."""
    processor = load_processor(str(tiny))
    compute = GroupWER(processor, {"gender": GENDER}, SPEAKERS)
    logits = _eval_prediction(processor, HYPS, pad_frames=7)
    ids = np.argmax(logits.predictions, axis=-1)
    ids[(logits.predictions == -100).all(axis=-1)] = -100
    as_ids = type(logits)(predictions=ids, label_ids=logits.label_ids)
    assert compute(as_ids) == pytest.approx(compute(logits))
    with pytest.raises(AsrfairError, match=r"GroupWER: predictions of shape \(3,\)"):
        compute(type(logits)(predictions=np.zeros(3), label_ids=logits.label_ids))


def _clips(folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        wave = np.random.default_rng(i).standard_normal(16_000).astype(np.float32)
        paths.append(write_clip(folder / f"{i}.i16", wave))
    return paths


def test_fine_tuning_logs_per_group_wer_and_gap_at_each_evaluation(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    processor = load_processor(str(tiny))
    net = load_model(str(tiny), processor.tokenizer.get_vocab(), TrainConfig(), reinit_head=False)
    paths = _clips(tmp_path, 8)
    train = training_table(paths[:4], [16_000] * 4, ["le chat"] * 4, processor)
    evals = training_table(paths[4:], [16_000] * 4, ["le chat", "la", "le chien", "un"], processor)
    compute = GroupWER(processor, {"gender": ["female", "female", "male", "male"]}, list("abcd"))
    cfg = TrainConfig(max_steps=2, batch_size=4, eval_steps=1, warmup_steps=0)
    result = fine_tune(
        net,
        processor,
        train,
        cfg,
        work_dir=tmp_path / "w",
        model_dir=tmp_path / "m",
        eval_set=evals,
        compute_metrics=compute,
    )
    logged = [entry for entry in result.log if "eval_wer" in entry]
    assert [entry["step"] for entry in logged] == [1, 2]
    for entry in logged:
        assert {"eval_wer_gender=female", "eval_wer_gender=male", "eval_gap_gender"} <= set(entry)
        assert entry["eval_gap_gender"] == pytest.approx(
            abs(entry["eval_wer_gender=female"] - entry["eval_wer_gender=male"])
        )
    assert "step 2: eval WER" in capsys.readouterr().err


def test_eval_steps_without_an_eval_set_is_a_one_line_error(tiny: Path, tmp_path: Path) -> None:
    processor = load_processor(str(tiny))
    net = load_model(str(tiny), processor.tokenizer.get_vocab(), TrainConfig(), reinit_head=False)
    table = training_table(_clips(tmp_path, 4), [16_000] * 4, ["le chat"] * 4, processor)
    with pytest.raises(AsrfairError, match="--eval-steps 5: no eval set"):
        fine_tune(
            net,
            processor,
            table,
            TrainConfig(max_steps=1, batch_size=4, eval_steps=5),
            work_dir=tmp_path / "w",
            model_dir=tmp_path / "m",
        )


def test_eval_line_shows_groups_and_gap_in_percent() -> None:
    logs = {"eval_wer": 0.5, "eval_wer_gender=female": 0.4, "eval_gap_gender": 0.2, "loss": 1.0}
    expected = "step 30: eval WER 50.0% · gender=female 40.0% · gap gender 20.0 pts"
    assert eval_line(logs, 30) == expected
    assert eval_line({"loss": 1.0}, 30) is None


def test_hold_out_takes_whole_speakers_from_each_group_of_the_training_subset() -> None:
    rows = [
        {"id": f"{g}{s}-{u}", "speaker": f"{g}{s}", "gender": g}
        for g in ("f", "m")
        for s in range(10)
        for u in range(3)
    ]
    subset = pd.DataFrame(rows)
    train, held = hold_out(subset, ["gender"], seed=0)
    assert len(train) + len(held) == len(subset)
    assert not set(train["speaker"]) & set(held["speaker"])
    assert set(held["gender"]) == {"f", "m"} and set(train["gender"]) == {"f", "m"}
    assert len(held) == 6  # 10% of each group's 30 utterances: one speaker of three clips each
    again = hold_out(subset, ["gender"], seed=0)[1]
    assert list(again["id"]) == list(held["id"])


def test_hold_out_with_one_speaker_per_group_is_a_one_line_error() -> None:
    subset = pd.DataFrame({"id": ["a", "b"], "speaker": ["s1", "s2"], "gender": ["female", "male"]})
    with pytest.raises(AsrfairError, match="--eval-steps: the training subset has too few"):
        hold_out(subset, ["gender"], seed=0)
