"""Unit tests of the train and infer stages with a tiny real Wav2Vec2ForCTC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asrfair import infer
from asrfair.audio import load_clip, write_clip
from asrfair.errors import AsrfairError
from asrfair.hparams import TrainConfig
from asrfair.infer import Clip, Transcriber, plan_batches, transcribe_to_file
from asrfair.models import load_processor
from asrfair.runs import done_ids
from asrfair.train import (
    CTCCollator,
    build_vocab,
    choose_vocab,
    load_model,
    precision,
    timed_saves,
    training_arguments,
    unknown_characters,
)
from conftest import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_vocab_has_delimiter_unk_and_pad_last() -> None:
    vocab = build_vocab(["le chat", "l'été"])
    assert list(vocab) == ["|", "'", "a", "c", "e", "h", "l", "t", "é", "[UNK]", "[PAD]"]
    assert vocab["[PAD]"] == len(vocab) - 1


def test_checkpoint_vocab_is_kept_when_it_covers_the_corpus(tiny: Path) -> None:
    vocab, reinit = choose_vocab(str(tiny), ["le chat dort"])
    assert not reinit and "œ" in vocab  # the checkpoint's own, larger vocabulary
    vocab, reinit = choose_vocab(str(tiny), ["le chat dort 2"])
    assert reinit and "2" in vocab


def test_new_vocabulary_reinitialises_the_head(tiny: Path) -> None:
    vocab = build_vocab(["abc"])
    net = load_model(str(tiny), vocab, TrainConfig(), reinit_head=True)
    assert net.lm_head.out_features == len(vocab)
    assert net.config.pad_token_id == vocab["[PAD]"]


def test_bad_model_paths_say_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrfairError, match="not a CTC or sequence-to-sequence speech checkpoint"):
        load_model(str(tmp_path / "empty"), build_vocab(["a"]), TrainConfig(), reinit_head=True)
    with pytest.raises(AsrfairError, match=r"hub is unreachable.*pass its local folder"):
        load_model("facebook/no-such-model-x", build_vocab(["a"]), TrainConfig(), reinit_head=True)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_collator_pads_labels_with_minus_100_and_masks_by_norm(tmp_path: Path, norm: str) -> None:
    model = make_tiny_model(tmp_path / norm, feat_extract_norm=norm)
    processor = load_processor(str(model))
    waves = [np.ones(1600, np.float32), np.ones(3200, np.float32)]
    caches = [write_clip(tmp_path / f"{i}.i16", wave) for i, wave in enumerate(waves)]
    labels = [processor.tokenizer(t).input_ids for t in ("ab", "abc d")]
    features = [{"cache": caches[i], "labels": labels[i]} for i in range(2)]
    collator = CTCCollator(processor, processor.feature_extractor.return_attention_mask)
    batch = collator(features)
    assert batch["input_values"].shape == (2, 3200)
    assert batch["labels"][0].tolist()[2:] == [-100] * 3
    assert ("attention_mask" in batch) == (norm == "layer")


def test_precision_is_fp32_on_cpu() -> None:
    assert precision("cpu") == "fp32"


def test_unknown_characters_are_counted(tiny: Path) -> None:
    assert unknown_characters(load_processor(str(tiny)), ["ab 12", "1"]) == {"1": 2, "2": 1}


def _clips(lengths: list[int]) -> list[Clip]:
    return [Clip(f"u{i}", "", n) for i, n in enumerate(lengths)]


def test_batches_are_sorted_longest_first_and_capped_by_padded_seconds() -> None:
    clips = _clips([16_000, 48_000, 32_000, 16_000, 16_000])
    batches = plan_batches(clips, batch_seconds=4.0)
    assert [[c.id for c in b] for b in batches] == [["u1"], ["u2", "u0"], ["u3", "u4"]]
    for batch in batches:
        assert batch[0].n_samples * len(batch) <= 4 * 16_000


def test_oom_halves_the_batch_and_carries_on() -> None:
    calls: list[int] = []

    def fragile(waves: object) -> list[str]:
        n = len(waves)  # type: ignore[arg-type]
        calls.append(n)
        if n > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return ["x"] * n

    started = infer.start_with_oom_halving(infer.Plain(fragile), [np.zeros(1)] * 8)
    assert started == [["x"] * 2] * 4
    assert calls == [8, 4, 2, 2, 4, 2, 2]


def test_transcription_appends_and_resumes(tiny: Path, tmp_path: Path) -> None:
    from transformers import Wav2Vec2ForCTC

    clips = []
    for i, seconds in enumerate([1.0, 2.0, 1.5, 0.5]):
        cache = write_clip(
            tmp_path / f"c{i}.i16",
            np.random.default_rng(i).standard_normal(int(seconds * 16_000)).astype(np.float32),
        )
        clips.append(Clip(f"c{i}", cache, int(seconds * 16_000)))
    model = Transcriber(
        Wav2Vec2ForCTC.from_pretrained(str(tiny)), load_processor(str(tiny)), torch.device("cpu")
    )
    out = tmp_path / "predictions.jsonl"
    first = transcribe_to_file(model, clips[:2], out, batch_seconds=2.0, progress=False)
    out.write_text(out.read_text() + '{"id": "c2", "hy', encoding="utf-8")  # killed mid-line
    assert done_ids(out) == {"c0", "c1"}
    second = transcribe_to_file(model, clips, out, batch_seconds=2.0, progress=False)
    assert (first, second) == (2, 2)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == ["c0", "c1", "c2", "c3"]
    # batched output equals one-at-a-time output: padding does not change the transcript
    single = {c.id: model([load_clip(c.cache)])[0] for c in clips}
    assert {r["id"]: r["hyp"] for r in lines} == single


def test_sharded_transcription_covers_every_clip_once(tiny: Path, tmp_path: Path) -> None:
    clips = _clips([16_000] * 6)

    def fake(waves: object) -> list[str]:
        return ["a"] * len(waves)  # type: ignore[arg-type]

    for i, clip in enumerate(clips):
        cache = write_clip(tmp_path / f"{clip.id}.i16", np.zeros(16_000, np.float32))
        clips[i] = Clip(clip.id, cache, clip.n_samples)
    for rank in range(2):
        transcribe_to_file(
            fake,
            clips,
            tmp_path / f"r{rank}.jsonl",
            batch_seconds=2.0,
            shard=(rank, 2),
            progress=False,
        )
    ids = [done_ids(tmp_path / f"r{rank}.jsonl") for rank in range(2)]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == {c.id for c in clips}


def test_batch_normalisation_matches_the_feature_extractor(tiny: Path) -> None:
    processor = load_processor(str(tiny))
    rng = np.random.default_rng(3)
    waves = [rng.standard_normal(n).astype(np.float32) * s for n, s in ((800, 1.0), (500, 3.0))]
    batch = infer.pad(waves)
    ours, mask = infer.normalise_batch(batch.values, batch.lengths)
    theirs = processor.feature_extractor(
        waves, sampling_rate=16_000, padding=True, return_attention_mask=True, return_tensors="pt"
    )
    assert torch.allclose(ours, theirs["input_values"], atol=1e-5)
    assert torch.equal(mask.to(torch.int32), theirs["attention_mask"].to(torch.int32))


def test_greedy_decoder_matches_the_tokenizer_and_ignores_padding(tiny: Path) -> None:
    tokenizer = load_processor(str(tiny)).tokenizer
    decode = infer.GreedyDecoder(tokenizer)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, len(tokenizer.get_vocab()) - 2, size=(5, 40)))
    full = torch.full((5,), 40)
    expected = [" ".join(t.split()) for t in tokenizer.batch_decode(ids)]
    assert decode(ids, full) == expected
    # frames past a clip's length (padding) add nothing
    shorter = decode(ids, torch.tensor([10] * 5))
    assert shorter == [" ".join(t.split()) for t in tokenizer.batch_decode(ids[:, :10])]


def test_fine_tuning_freezes_the_feature_encoder_and_trains_the_rest(
    tiny: Path, tmp_path: Path
) -> None:
    from asrfair.train import fine_tune, training_table

    processor = load_processor(str(tiny))
    net = load_model(str(tiny), processor.tokenizer.get_vocab(), TrainConfig(), reinit_head=False)
    paths = []
    for i in range(8):
        wave = np.random.default_rng(i).standard_normal(16_000).astype(np.float32)
        paths.append(write_clip(tmp_path / f"{i}.i16", wave))
    table = training_table(paths, [16_000] * 8, ["le chat"] * 8, processor)
    conv_before = [p.detach().clone() for p in net.wav2vec2.feature_extractor.parameters()]
    head_before = net.lm_head.weight.detach().clone()
    cfg = TrainConfig(max_steps=2, batch_size=4, learning_rate=1e-2, warmup_steps=0)
    result = fine_tune(
        net, processor, table, cfg, work_dir=tmp_path / "w", model_dir=tmp_path / "m"
    )
    assert result.steps == 2 and (tmp_path / "m" / "model.safetensors").is_file()
    assert not any(p.requires_grad for p in net.wav2vec2.feature_extractor.parameters())
    after = list(net.wav2vec2.feature_extractor.parameters())
    assert all(torch.equal(a, b) for a, b in zip(conv_before, after, strict=True))
    assert not torch.equal(head_before, net.lm_head.weight)


# --- training at scale ----------------------------------------------------------------------------
@pytest.mark.parametrize(("layerdrop", "search"), [(0.0, False), (0.1, True)])
def test_ddp_searches_for_unused_parameters_only_when_layers_drop(
    tmp_path: Path, layerdrop: float, search: bool
) -> None:
    args = training_arguments(TrainConfig(layerdrop=layerdrop), tmp_path, "cpu")
    assert args.ddp_find_unused_parameters is search


def test_checkpoint_limit_and_loader_workers_reach_the_trainer(tmp_path: Path) -> None:
    cfg = TrainConfig(save_total_limit=5, dataloader_workers=3)
    args = training_arguments(cfg, tmp_path, "cpu")
    assert (args.save_total_limit, args.dataloader_num_workers) == (5, 3)
    defaults = training_arguments(TrainConfig(), tmp_path, "cpu")
    assert (defaults.save_total_limit, defaults.dataloader_num_workers) == (2, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("save_total_limit", 0, "save_total_limit must be positive, not 0"),
        ("save_minutes", -1.0, "save_minutes must be 0 or more, not -1.0"),
        ("dataloader_workers", -2, "dataloader_workers must be 0 or more, not -2"),
    ],
)
def test_scale_options_refuse_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(AsrfairError, match=message):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_timed_saves_ask_for_a_checkpoint_after_the_minutes_pass() -> None:
    from transformers import TrainerControl

    now = [0.0]
    assert timed_saves(0.0, lambda: now[0]) == []
    (saver,) = timed_saves(2.0, lambda: now[0])
    control = TrainerControl()
    saver.on_train_begin(None, None, control)
    now[0] = 119.0
    saver.on_step_end(None, None, control)
    assert not control.should_save
    now[0] = 120.0
    saver.on_step_end(None, None, control)
    assert control.should_save
    saver.on_save(None, None, TrainerControl())  # the clock restarts at each save
    control = TrainerControl()
    now[0] = 239.0
    saver.on_step_end(None, None, control)
    assert not control.should_save


def test_timed_saves_keep_only_the_newest_checkpoints_with_a_loader_worker(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    from asrfair import train as train_module
    from asrfair.train import fine_tune, training_table

    work = tmp_path / "w"
    seen: dict[str, list[object]] = {"saves": [], "kept": [], "workers": []}

    class Record(TrainerCallback):
        def on_train_begin(self, args: object, state: object, control: object, **kw: Any) -> None:
            seen["workers"].append(kw["train_dataloader"].num_workers)

        def on_save(self, args: object, state: object, control: object, **kw: object) -> None:
            seen["saves"].append(state.global_step)  # type: ignore[attr-defined]
            seen["kept"].append(sorted(p.name for p in work.glob("checkpoint-*")))

    real_callbacks = train_module._callbacks
    monkeypatch.setattr(train_module, "_callbacks", lambda: [*real_callbacks(), Record()])
    processor = load_processor(str(tiny))
    net = load_model(str(tiny), processor.tokenizer.get_vocab(), TrainConfig(), reinit_head=False)
    paths = [
        write_clip(tmp_path / f"{i}.i16", np.full(8_000, 0.01 * i, dtype=np.float32))
        for i in range(4)
    ]
    table = training_table(paths, [8_000] * 4, ["le chat"] * 4, processor)
    cfg = TrainConfig(
        max_steps=3,
        batch_size=2,
        warmup_steps=0,
        save_steps=1_000,  # only the clock asks for checkpoints
        save_minutes=1e-9,
        save_total_limit=1,
        dataloader_workers=1,
    )
    fine_tune(net, processor, table, cfg, work_dir=work, model_dir=tmp_path / "m")
    assert seen["workers"] == [1]
    assert seen["saves"] == [1, 2, 3]
    assert seen["kept"] == [["checkpoint-1"], ["checkpoint-2"], ["checkpoint-3"]]


def test_a_device_batch_keeps_the_effective_batch(tmp_path: Path) -> None:
    args = training_arguments(
        TrainConfig(batch_size=8, grad_accum=2, device_batch=4), tmp_path, "cpu"
    )
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 4)
    default = training_arguments(TrainConfig(batch_size=8, grad_accum=2), tmp_path, "cpu")
    assert (default.per_device_train_batch_size, default.gradient_accumulation_steps) == (8, 2)
    with pytest.raises(
        AsrfairError, match=r"device_batch 3 must divide .* = 16; use one of 1, 2, 4, 8, 16"
    ):
        TrainConfig(batch_size=8, grad_accum=2, device_batch=3)


def test_a_device_batch_trains_the_same_model(tiny: Path, tmp_path: Path) -> None:
    """4 clips at once, or 2 at a time accumulated twice: one optimiser step on the same clips
    (no SpecAugment, whose masks are drawn per device batch), the same weights."""
    from asrfair.train import fine_tune, training_table

    processor = load_processor(str(tiny))
    paths = [
        write_clip(
            tmp_path / f"{i}.i16",
            np.random.default_rng(i).standard_normal(8_000 + 800 * i).astype(np.float32),
        )
        for i in range(8)
    ]
    lengths = [8_000 + 800 * i for i in range(8)]
    heads = []
    for device_batch in (0, 2):
        cfg = TrainConfig(
            max_steps=2, batch_size=4, warmup_steps=0, mask_time_prob=0.0, device_batch=device_batch
        )
        torch.manual_seed(0)  # the same start (a checkpoint's missing weights are drawn)
        net = load_model(str(tiny), processor.tokenizer.get_vocab(), cfg, reinit_head=False)
        start = net.lm_head.weight.detach().clone()
        table = training_table(paths, lengths, ["le chat", "la", "chat", "le"] * 2, processor)
        work = tmp_path / f"w{device_batch}"
        fine_tune(
            net, processor, table, cfg, work_dir=work, model_dir=tmp_path / f"m{device_batch}"
        )
        heads.append(net.lm_head.weight.detach().clone())
        assert not torch.equal(start, heads[-1])  # it trained
    assert torch.allclose(heads[0], heads[1], atol=1e-6)
