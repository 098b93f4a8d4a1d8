"""The GPU-bound inference path, run on the CPU: loader workers, normalisation and masks built
on the device in fp32, ids-only argmax results, decoding one batch behind, the bf16 model
rule and the default batch from free memory. Its transcripts are checked against the old
arithmetic (float64 normalisation on the host) and against one clip at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from asrfair import infer
from asrfair.audio import decode, load_clip, write_clip
from asrfair.audit_options import demo_model
from asrfair.default_plugins.datasets import demo_path
from asrfair.errors import AsrfairError
from asrfair.infer import Clip, PaddedBatch, Transcriber, transcribe_to_file
from asrfair.models import load_processor
from conftest import make_tiny_model

CLIPS = 40


def float64_reference(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """The host-side arithmetic the infer stage used before (``pad_and_normalise``), kept here
    as the reference: zero padding, then float64 mean and variance per clip."""
    lengths = torch.tensor([len(w) for w in waves])
    padded = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for row, wave in enumerate(waves):
        padded[row, : len(wave)] = wave
    batch = torch.from_numpy(padded)
    mask = torch.arange(batch.shape[1])[None, :] < lengths[:, None]
    n = lengths[:, None].to(torch.float64)
    values = batch.to(torch.float64)
    mean = values.sum(dim=1, keepdim=True) / n
    var = (((values - mean) * mask) ** 2).sum(dim=1, keepdim=True) / n
    return (((values - mean) / torch.sqrt(var + 1e-7)) * mask).to(torch.float32), mask


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """The demo's first test clips in the int16 store format, as an audit would load them."""
    root = tmp_path_factory.mktemp("clips")
    names = pd.read_csv(demo_path() / "test.tsv", sep="\t")["path"][:CLIPS]
    clips = []
    for i, name in enumerate(names):
        wave = decode(demo_path() / "clips" / name)
        clips.append(Clip(f"c{i:02d}", write_clip(root / f"c{i}.i16", wave), len(wave)))
    return clips


@pytest.fixture(scope="module")
def demo() -> Transcriber:
    from transformers import Wav2Vec2ForCTC

    net = Wav2Vec2ForCTC.from_pretrained(demo_model())
    return Transcriber(net, load_processor(demo_model()), torch.device("cpu"))


def _hyps(path: Path) -> dict[str, str]:
    return {r["id"]: r["hyp"] for r in map(json.loads, path.read_text().splitlines())}


def test_device_normalisation_matches_the_old_float64_arithmetic() -> None:
    rng = np.random.default_rng(5)
    # a 30 s clip with an offset (the longest sums), loud and quiet ones, a very short one
    shapes = ((480_000, 0.3, 0.2), (16_000, 5.0, -1.0), (48_000, 1e-3, 0.0), (40, 1.0, 0.0))
    waves = [(rng.standard_normal(n) * s + o).astype(np.float32) for n, s, o in shapes]
    batch = infer.pad(waves)
    ours, mask = infer.normalise_batch(batch.values, batch.lengths)
    reference, reference_mask = float64_reference(waves)
    assert ours.dtype == torch.float32
    assert torch.equal(mask, reference_mask)
    assert torch.allclose(ours, reference, atol=2e-5, rtol=0)
    assert not ours[~mask].any()  # padding stays exactly 0


def test_transcripts_equal_the_old_float64_path(demo: Transcriber, demo_clips: list[Clip]) -> None:
    """Every batch of the plan through the new path (loader, fp32 normalisation in the
    transcriber, ids-only argmax, vectorised decoding) against the old host arithmetic
    followed by the tokenizer's own decoding, batch by batch."""
    tokenizer = demo.processor.tokenizer
    new: list[str] = []
    old: list[str] = []
    for batch in infer.plan_batches(demo_clips, 20.0):
        waves = [load_clip(c.cache) for c in batch]
        new += demo(waves)
        values, mask = float64_reference(waves)
        with torch.inference_mode():
            ids = demo.model(values, attention_mask=mask.to(torch.int32)).logits.argmax(-1)
        frames = demo.model._get_feat_extract_output_lengths(mask.sum(dim=1))
        for row, n in zip(ids, frames.tolist(), strict=True):
            old.append(" ".join(tokenizer.decode(row[:n]).split()))
    assert sum(map(len, old)) > 500  # the demo model writes text: equality is not trivial
    assert new == old


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_workers_write_what_one_clip_at_a_time_writes(
    demo: Transcriber, demo_clips: list[Clip], tmp_path: Path, workers: int
) -> None:
    out = tmp_path / "p.jsonl"
    written = transcribe_to_file(
        demo, demo_clips, out, batch_seconds=20.0, progress=False, workers=workers
    )
    assert written == CLIPS
    single = {c.id: demo([load_clip(c.cache)])[0] for c in demo_clips}
    assert _hyps(out) == single


def test_postprocess_rewrites_each_transcript_before_it_is_written(tmp_path: Path) -> None:
    clips = [Clip(f"u{i}", write_clip(tmp_path / f"{i}.i16", np.zeros(800)), 800) for i in range(3)]
    out = tmp_path / "p.jsonl"
    seen: list[str] = []

    def extra(utt: str, hyp: str) -> dict[str, Any]:
        seen.append(hyp)
        return {}

    transcribe_to_file(
        lambda w: ["Ab"] * len(w), clips, out, progress=False, postprocess=str.lower, extra=extra
    )
    assert set(_hyps(out).values()) == {"ab"} and seen == ["ab"] * 3


def test_a_clip_a_worker_cannot_load_is_a_one_line_error(tmp_path: Path) -> None:
    good = write_clip(tmp_path / "good.i16", np.zeros(1600, np.float32))
    bad = write_clip(tmp_path / "bad.i16", np.ones(800, np.float32))
    shard = Path(json.loads(bad)[0])
    shard.write_bytes(shard.read_bytes()[:-10])  # truncated
    clips = [Clip("g", good, 1600), Clip("b", bad, 800)]
    out = tmp_path / "p.jsonl"
    with pytest.raises(AsrfairError) as caught:
        transcribe_to_file(lambda w: ["x"] * len(w), clips, out, progress=False, workers=1)
    message = str(caught.value)
    assert "truncated" in message and "\n" not in message and "Traceback" not in message


def test_a_failing_batch_still_writes_the_batch_before(tmp_path: Path) -> None:
    """Decoding runs one batch behind the device; a batch that fails must not take the
    finished one before it down with it."""
    clips = [
        Clip(f"u{i}", write_clip(tmp_path / f"{i}.i16", np.zeros(16_000)), 16_000) for i in range(4)
    ]
    calls = 0

    def model(waves: Sequence[np.ndarray]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return ["x"] * len(waves)

    out = tmp_path / "p.jsonl"
    with pytest.raises(KeyboardInterrupt):
        transcribe_to_file(model, clips, out, batch_seconds=1.0, progress=False)
    assert len(_hyps(out)) == 2


def test_an_out_of_memory_split_trims_each_half_to_its_longest_clip() -> None:
    batch = infer.pad([np.ones(n, np.float32) for n in (400, 300, 200, 100)])
    shapes: list[tuple[int, ...]] = []

    class Fragile(infer.Plain):
        def start(self, padded: PaddedBatch) -> list[str]:  # type: ignore[override]
            if len(padded) > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            shapes.append(tuple(padded.values.shape))
            return ["x"]

    parts = infer.start_with_oom_halving(Fragile(lambda w: []), batch)
    assert parts == [["x"]] * 4
    assert shapes == [(1, 400), (1, 300), (1, 200), (1, 100)]


def test_the_model_runs_in_bf16_on_a_bf16_gpu_and_fp16_under_autocast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert infer.precision_for(cpu, True) == infer.Precision(torch.float32, None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert infer.precision_for(cuda, True) == infer.Precision(torch.bfloat16, None)
    assert infer.precision_for(cuda, False) == infer.Precision(torch.float32, None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert infer.precision_for(cuda, True) == infer.Precision(torch.float32, torch.float16)


def test_a_bf16_model_has_bf16_weights_and_returns_only_int_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import Wav2Vec2ForCTC

    folder = make_tiny_model(tmp_path / "tiny")
    monkeypatch.setattr(infer, "reduced_dtype", lambda device: torch.bfloat16)
    model = Transcriber(
        Wav2Vec2ForCTC.from_pretrained(folder), load_processor(str(folder)), torch.device("cpu")
    )
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    pending = model.start(infer.pad([np.ones(3200, np.float32), np.ones(1600, np.float32)]))
    assert pending.ids.dtype == torch.int32 and pending.ids.dim() == 2
    assert len(model.finish(pending)) == 2


def _fake_ctc(weights: torch.dtype, conv_dim: Any = (512,) * 7) -> Any:
    config = SimpleNamespace(conv_dim=conv_dim, conv_stride=(5, 2, 2, 2, 2, 2, 2))
    return SimpleNamespace(model=SimpleNamespace(config=config), precision=infer.Precision(weights))


@pytest.mark.parametrize(
    ("free_gb", "weights", "expected"),
    [
        (78.0, torch.bfloat16, 640.0),  # an idle H100: capped
        (4.0, torch.bfloat16, 4e9 * 0.5 / (4 * 512 * 3200 * 2)),  # 152.6 s
        (4.0, torch.float32, 4e9 * 0.5 / (4 * 512 * 3200 * 4)),  # fp32 costs twice as much
        (0.5, torch.bfloat16, 60.0),  # never below the CPU default: OOM halving takes over
    ],
)
def test_the_default_batch_follows_free_gpu_memory(
    monkeypatch: pytest.MonkeyPatch, free_gb: float, weights: torch.dtype, expected: float
) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_gb * 1e9, 80e9))
    seconds = infer.default_batch_seconds(_fake_ctc(weights), torch.device("cuda"))
    assert seconds == pytest.approx(expected)


def test_the_default_batch_is_60_s_on_cpu_and_for_seq2seq(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (78e9, 80e9))
    assert infer.default_batch_seconds(_fake_ctc(torch.float32), torch.device("cpu")) == 60.0
    whisper = _fake_ctc(torch.bfloat16, conv_dim=None)
    assert infer.default_batch_seconds(whisper, torch.device("cuda")) == 60.0


def test_loader_workers_default_to_none_on_cpu_and_up_to_four_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert infer.default_workers(torch.device("cpu")) == 0
    monkeypatch.setattr(infer.os, "cpu_count", lambda: 16)
    assert infer.default_workers(torch.device("cuda")) == 4
    monkeypatch.setattr(infer.os, "cpu_count", lambda: 2)
    assert infer.default_workers(torch.device("cuda")) == 2
