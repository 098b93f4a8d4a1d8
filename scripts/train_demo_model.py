"""Pre-train the bundled demo checkpoint (src/asrfair/demo/model). Run by hand, not in CI.

    .venv/bin/python scripts/make_demo_corpus.py --skip-demo --pretrain build/pretrain
    .venv/bin/python scripts/train_demo_model.py --max-steps 4500

A small Wav2Vec2ForCTC trained from scratch with CTC on the pre-training set: espeak-ng French
from the demo's sentence pool, voiced by settings that the demo corpus does not use, 80% of them
male. None of the demo corpus's voices are in it, so the demo audit measures the model on new
voices, and the male skew gives it a real gender gap for fine-tuning to move.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from asrfair.audio import AudioSettings, prepare_audio
from asrfair.corpus import load_corpus, normalise_sentences
from asrfair.hparams import TrainConfig
from asrfair.plugins import installed
from asrfair.text import cv_french
from asrfair.train import PAD, build_vocab, fine_tune, make_processor, training_table

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "scripts" / "demo_sentences.txt"
MODEL_OUT = ROOT / "src" / "asrfair" / "demo" / "model"


def tiny_config(vocab: dict[str, int], hidden: int, layers: int, conv: int) -> object:
    """wav2vec2's conv front end (320x down-sampling: 50 frames/s) with layer norm, scaled down."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        vocab_size=len(vocab),
        pad_token_id=vocab[PAD],
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        conv_dim=(conv,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=64,
        num_conv_pos_embedding_groups=8,
        hidden_dropout=0.05,
        attention_dropout=0.05,
        activation_dropout=0.0,
        feat_proj_dropout=0.05,
        final_dropout=0.0,
        mask_time_prob=0.05,
        layerdrop=0.0,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "build/pretrain/manifest.csv")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build/demo-model-train")
    parser.add_argument("--out", type=Path, default=MODEL_OUT)
    parser.add_argument("--max-steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=160)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--conv", type=int, default=64)
    args = parser.parse_args()

    from transformers import Wav2Vec2ForCTC

    pool = [cv_french(s) for s in SENTENCES.read_text(encoding="utf-8").splitlines() if s.strip()]
    vocab = build_vocab(pool)
    corpus = normalise_sentences(
        load_corpus(f"manifest:{args.manifest}", installed().datasets()), cv_french
    )
    prepared = prepare_audio(corpus.frame, AudioSettings())
    rows = corpus.frame.set_index("id").loc[prepared.table["id"]]
    processor = make_processor(vocab, args.work_dir / "processor", "layer")
    table = training_table(
        prepared.table["cache"], prepared.table["n_samples"], rows["sentence"], processor
    )
    config = tiny_config(vocab, args.hidden, args.layers, args.conv)
    net = Wav2Vec2ForCTC(config)  # type: ignore[arg-type]
    n_params = sum(p.numel() for p in net.parameters())
    hours = prepared.table["seconds"].sum() / 3600
    print(f"{n_params / 1e6:.2f} M parameters; {len(table)} clips, {hours:.2f} h")
    cfg = TrainConfig(
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        warmup_steps=min(500, args.max_steps // 10),
        weight_decay=0.01,
        batch_size=args.batch_size,
        save_steps=500,
        logging_steps=50,
        mask_time_prob=0.05,
        hidden_dropout=0.05,
        attention_dropout=0.05,
        feat_proj_dropout=0.05,
        freeze_feature_encoder=False,
    )
    start = time.perf_counter()
    result = fine_tune(net, processor, table, cfg, work_dir=args.work_dir, model_dir=args.out)
    elapsed = time.perf_counter() - start
    audio_s = result.steps * args.batch_size * prepared.table["seconds"].mean()
    print(
        f"trained {result.steps} steps in {elapsed / 60:.1f} min "
        f"(~{audio_s / elapsed:.0f} audio-s/s)"
    )
    for entry in result.log:
        if "loss" in entry:
            print(f"step {entry['step']}: loss {entry['loss']:.3f}")


if __name__ == "__main__":
    main()
