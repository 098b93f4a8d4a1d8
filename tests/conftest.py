"""Shared fixtures. Rich's width is pinned so that table output is the same everywhere."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
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

    plugins.load_plugins.cache_clear()
    yield
    plugins.load_plugins.cache_clear()


@pytest.fixture
def registered() -> Iterator[list[object]]:
    """Plugins appended to this list are registered for the test and unregistered after."""
    from asrfair import plugins

    added: list[object] = []
    pm = plugins.get_plugin_manager()

    class _Adder(list[object]):
        def append(self, plugin: object) -> None:
            pm.register(plugin, name=f"test-{len(self)}")
            super().append(plugin)

    adder = _Adder()
    yield adder
    for plugin in adder:
        pm.unregister(plugin)
    del added


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


def make_tiny_model(folder: Path, feat_extract_norm: str = "layer") -> Path:
    """A real, randomly initialised Wav2Vec2ForCTC small enough for unit tests, with processor."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from asrfair.train import PAD, build_vocab, make_processor

    letters = "abcdefghijklmnopqrstuvwxyzàâäçèéêëîïôœùûüÿ'"
    vocab = build_vocab([letters])
    processor = make_processor(vocab, folder, feat_extract_norm)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        pad_token_id=vocab[PAD],
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=feat_extract_norm,
        do_stable_layer_norm=feat_extract_norm == "layer",
        mask_time_prob=0.0,
    )
    import torch

    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def requires_tool(name: str, install: str) -> pytest.MarkDecorator:
    """Skip, saying why, where the tool is missing; under CI (which installs it) never skip."""
    missing = shutil.which(name) is None
    if missing and os.environ.get("CI"):
        raise RuntimeError(f"CI must install {name} ({install}) before the tests run")
    return pytest.mark.skipif(missing, reason=f"{name} is not installed ({install})")
