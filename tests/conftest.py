"""Shared fixtures. Rich's width is pinned so that table output is the same everywhere."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from asrfair.default_plugins.datasets import CV17_COLUMNS

# Tests never reach a model hub: fail at once instead of retrying a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Property tests (test_properties.py) draw the same examples on every run, so CI is
# reproducible; no deadline, as the first example pays for imports and a slow CI machine.
settings.register_profile("asrfair", derandomize=True, deadline=None, database=None)
settings.load_profile("asrfair")

# Vendored from the team's shared/conformance/sclite (SCTK test data; see its README), so the
# conformance tests run in every clone instead of skipping where shared/ is absent.
CONFORMANCE = Path(__file__).resolve().parent / "data" / "sclite"
LVC = CONFORMANCE / "lvc_hyp.csv"


@pytest.fixture(autouse=True)
def _pinned_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("ASRFAIR_BLOCK_PLUGINS", raising=False)


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Rebuild the plugin manager around a test that changes the environment or registrations."""
    from asrfair import plugins

    plugins.installed.cache_clear()
    yield
    plugins.installed.cache_clear()


def write_transcripts(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write rows as CSV, TSV or JSONL according to the suffix."""
    frame = pd.DataFrame(rows)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def gender_rows(n_speakers: int = 12, per_speaker: int = 5) -> list[dict[str, object]]:
    """Synthetic transcripts where female speakers get more errors than male ones."""
    rows: list[dict[str, object]] = []
    for s in range(n_speakers):
        gender = "female_feminine" if s % 2 else "male_masculine"
        for u in range(per_speaker):
            ref = "le chat dort sur le canapé rouge"
            wrong = (s % 2) * 2 + (u + s) % 2  # females: 2-3 errors, males: 0-1
            hyp_words = ref.split()
            for k in range(wrong):
                hyp_words[k] = "x"
            rows.append(
                {
                    "id": f"s{s}-u{u}",
                    "speaker": f"spk{s}",
                    "gender": gender,
                    "age": "twenties" if s < 6 else "fifties",
                    "ref": ref,
                    "hyp": " ".join(hyp_words),
                }
            )
    return rows


OLD_HEADER = [
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accent",
    "locale",
    "segment",
]


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype("float32")
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def make_cv_release(
    root: Path,
    *,
    n_speakers: int = 10,
    per_speaker: int = 3,
    old: bool = False,
    fmt: str = "MP3",
) -> Path:
    """A small Common Voice-format folder: TSVs with CV 17 (or older) columns and real clips."""
    import soundfile as sf

    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    header = OLD_HEADER if old else list(CV17_COLUMNS)
    genders = ["male", "female", ""] if old else ["male_masculine", "female_feminine", ""]
    rows = []
    for s in range(n_speakers):
        for u in range(per_speaker):
            name = f"common_voice_fr_{s:02d}{u:02d}.mp3"
            sf.write(clips / name, tone(1.0 + 0.5 * u, 48_000), 48_000, format=fmt)
            values = {
                "client_id": f"client{s:02d}",
                "path": name,
                "sentence_id": f"sid{s}{u}",
                "sentence": f'Il a dit "bonjour" {u} fois, n° {s}.',
                "sentence_domain": "",
                "up_votes": "2",
                "down_votes": "0",
                "age": "twenties" if s % 2 else "fifties",
                "gender": genders[s % 3] if s < n_speakers - 1 else "other",
                "accents": ["fr", "fr-be"][s % 2],
                "accent": ["france", "belgique"][s % 2],
                "variant": "",
                "locale": "fr",
                "segment": "",
            }
            rows.append([values[c] for c in header])
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    (root / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train = [lines[0]] + [line for line in lines[1:] if "client00" not in line]
    test = [lines[0]] + [line for line in lines[1:] if "client00" in line]
    (root / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (root / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    (root / "dev.tsv").write_text(lines[0] + "\n", encoding="utf-8")
    return root


TINY_LETTERS = "abcdefghijklmnopqrstuvwxyzàâäçèéêëîïôœùûüÿ'"
# Small enough for unit tests; conv_dim 8 x 7 keeps every family's 320x down-sampling.
TINY_CTC = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (8,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "mask_time_prob": 0.0,
}


def make_tiny_model(
    folder: Path, feat_extract_norm: str = "layer", family: str = "wav2vec2", **config: object
) -> Path:
    """A real, randomly initialised CTC model small enough for unit tests, with its processor:
    ``family`` is a config.model_type (wav2vec2, hubert, wavlm, data2vec-audio...)."""
    import torch
    from transformers import AutoConfig, AutoModelForCTC

    from asrfair.train import PAD, build_vocab, make_processor

    vocab = build_vocab([TINY_LETTERS])
    processor = make_processor(vocab, folder, feat_extract_norm)
    norm = {
        "feat_extract_norm": feat_extract_norm,
        "do_stable_layer_norm": feat_extract_norm == "layer",
    }
    settings = {**TINY_CTC, **({} if family == "data2vec-audio" else norm), **config}
    if family == "wavlm":
        settings.update(num_buckets=8, max_bucket_distance=16)
    model_config = AutoConfig.for_model(
        family, vocab_size=len(vocab), pad_token_id=vocab[PAD], **settings
    )
    torch.manual_seed(0)
    AutoModelForCTC.from_config(model_config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_mms(folder: Path, languages: tuple[str, ...] = ("eng", "fra")) -> Path:
    """An MMS-style checkpoint: wav2vec2 with adapter layers (``adapter_attn_dim``), one
    vocabulary per language in vocab.json, and ``adapter.<lang>.safetensors`` per language
    (adapter layers and a CTC head sized by that language's vocabulary)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    from asrfair.train import build_vocab

    vocabs = {lang: build_vocab([TINY_LETTERS[: 20 + 6 * i]]) for i, lang in enumerate(languages)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocabs), encoding="utf-8")
    make_tiny_model(folder, adapter_attn_dim=8)  # then the nested vocabulary replaces its own
    (folder / "vocab.json").write_text(json.dumps(vocabs), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        word_delimiter_token="|",
        target_lang=languages[0],
    )
    tokenizer.save_pretrained(folder)
    net = Wav2Vec2ForCTC.from_pretrained(str(folder))
    for i, lang in enumerate(languages):
        torch.manual_seed(i + 1)
        weights = {k: torch.randn_like(v) * 0.1 for k, v in net._get_adapters().items()}
        size = len(vocabs[lang])
        weights["lm_head.weight"] = torch.randn(size, TINY_CTC["hidden_size"])  # type: ignore[call-overload]
        weights["lm_head.bias"] = torch.zeros(size)
        save_file(weights, str(folder / f"adapter.{lang}.safetensors"))
    return folder


WHISPER_LANGUAGES = ("en", "fr")


def make_tiny_whisper(folder: Path, *, multilingual: bool = True) -> Path:
    """A real, randomly initialised WhisperForConditionalGeneration with its processor: a
    byte-level BPE tokenizer (every byte, a few merges, Whisper's special tokens) and a
    generation config that lets ``generate(language=..., task=...)`` build its prompt. Only
    letter and space tokens may be generated, so random weights still write words."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges = [("Ġ", "l"), ("e", "s"), ("o", "n"), ("Ġl", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    languages = WHISPER_LANGUAGES if multilingual else ()
    special = [
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in languages),
        "<|translate|>",
        "<|transcribe|>",
        "<|notimestamps|>",
    ]
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ["<|endoftext|>", *special]}
    end = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=64,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        init_std=0.5,  # large random weights: what it writes depends on the audio
    )
    torch.manual_seed(0)
    net = WhisperForConditionalGeneration(config)
    generation = net.generation_config
    generation._from_model_config = False  # else loading rebuilds it from config.json
    generation.decoder_start_token_id = ids["<|startoftranscript|>"]
    generation.eos_token_id = generation.pad_token_id = end
    generation.no_timestamps_token_id = ids["<|notimestamps|>"]
    generation.is_multilingual = multilingual
    generation.max_length = config.max_target_positions
    if multilingual:
        generation.lang_to_id = {f"<|{code}|>": ids[f"<|{code}|>"] for code in languages}
        generation.task_to_id = {t: ids[f"<|{t}|>"] for t in ("transcribe", "translate")}
    writable = {vocab[ch] for ch in "abcdefghijklmnopqrstuvwxyzĠ"} | {
        len(bytes_to_unicode()) + i for i in range(len(merges))
    }
    generation.suppress_tokens = sorted(set(range(len(tokenizer))) - writable - {end})
    net.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    return folder


def requires_tool(name: str, install: str) -> pytest.MarkDecorator:
    """Skip, saying why, where the tool is missing; under CI (which installs it) never skip."""
    missing = shutil.which(name) is None
    if missing and os.environ.get("CI"):
        raise RuntimeError(f"CI must install {name} ({install}) before the tests run")
    return pytest.mark.skipif(missing, reason=f"{name} is not installed ({install})")


class Killed(Exception):
    """A rank, or the whole job, killed between two batches (a time limit, a lost node)."""


def dying_model(
    stop_after: int, record: Callable[[Sequence[np.ndarray]], None]
) -> Callable[[Sequence[np.ndarray]], list[str]]:
    """A fake model for sharding tests: it hands each batch to ``record``, transcribes each
    clip as its length, and dies (raises Killed) when asked for one batch more than
    ``stop_after`` (-1: never)."""
    batches = 0

    def model(waves: Sequence[np.ndarray]) -> list[str]:
        nonlocal batches
        if batches == stop_after:
            raise Killed
        batches += 1
        record(waves)
        return [str(len(w)) for w in waves]

    return model
