"""The bundled demo corpus: enough distinct voices for its per-gender intervals to mean something.

A speaker-level bootstrap treats every speaker as an independent draw; two "speakers" that are one
voice would make the intervals narrower than the data allow. So every voice of the corpus speaks
one sentence and every pair is compared on a spectral summary: identical settings give distance
0, and changes as small as the per-clip jitter the corpus itself applies stay far below the bar.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from asrfair.corpus import load_corpus
from asrfair.default_plugins.datasets import demo_path
from asrfair.plugins import installed
from asrfair.split import make_split
from conftest import requires_tool

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Le petit chat dort sur le canapé depuis ce matin."
# RMS difference, in dB, between two voices' spectral summaries. The corpus's per-clip jitter
# (pitch +-3, speed +-6) moves one voice by about 0.3 dB; the closest two demo voices were 1.5 apart
# when the corpus was made.
DISTINCT_DB = 0.75


def _corpus_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_demo_corpus", ROOT / "scripts" / "make_demo_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def spectral_summary(wave: np.ndarray) -> np.ndarray:
    """Mean and spread over time of the log power in 30 log-spaced bands, plus log duration."""
    n_fft, hop = 512, 160
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    voiced = power.sum(axis=1) > 1e-3 * power.sum(axis=1).max()
    db = 10 * np.log10(power[voiced] + 1e-10)
    edges = np.unique(np.geomspace(3, 240, 36).astype(int))
    bands = np.stack([db[:, a:b].mean(axis=1) for a, b in itertools.pairwise(edges)], axis=1)
    return np.concatenate([bands.mean(axis=0), bands.std(axis=0), [10 * np.log(len(wave))]])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_the_default_split_tests_ten_voices_per_gender() -> None:
    frame = load_corpus("demo", installed().datasets()).frame
    split = make_split(frame, "speaker", test_fraction=0.2, seed=0, stratify=["gender"])
    test = frame[frame["id"].isin(split.ids("test"))]
    assert test.groupby("gender")["speaker"].nunique().to_dict() == {"female": 10, "male": 10}
    assert frame.groupby("gender")["speaker"].nunique().to_dict() == {"female": 50, "male": 50}


def test_the_demo_stays_small() -> None:
    size = sum(p.stat().st_size for p in demo_path().rglob("*") if p.is_file())
    assert size <= 15_000_000


@requires_tool("espeak-ng", "Debian: apt-get install espeak-ng")
def test_every_demo_voice_sounds_different_from_every_other() -> None:
    script = _corpus_script()
    table = pd.read_csv(demo_path() / "voices.tsv", sep="\t", dtype=str)
    speakers = set(load_corpus("demo", installed().datasets()).frame["speaker"])
    assert set(table["client_id"]) == speakers  # the table describes exactly the corpus's voices
    voices = [
        script.Voice(
            name=row.name,
            variant=row.variant,
            gender=row.gender,
            accent=row.accent,
            speed=int(row.speed),
            pitch=int(row.pitch),
            pitch_range=int(row.pitch_range),
            age="",
        )
        for row in table.itertuples()
    ]
    summaries = [spectral_summary(script.speak(v, SENTENCE, v.speed, v.pitch)) for v in voices]
    closest = min(
        (distance(summaries[i], summaries[j]), voices[i].name, voices[j].name)
        for i, j in itertools.combinations(range(len(voices)), 2)
    )
    assert closest[0] > DISTINCT_DB, f"{closest[1]} and {closest[2]} sound alike: {closest}"

    # The bar is one that duplicates fail: the accent variants espeak-ng renders identically, and
    # the same voice moved by the corpus's own per-clip jitter.
    first = voices[0]
    other_accent = "fr-be" if first.accent != "fr-be" else "fr"
    for twin in (
        replace(first, accent=other_accent),
        replace(first, pitch=first.pitch + 3, speed=first.speed + 6),
    ):
        wave = script.speak(twin, SENTENCE, twin.speed, twin.pitch)
        assert distance(spectral_summary(wave), summaries[0]) < DISTINCT_DB, twin


@pytest.mark.parametrize("gender", ["male_masculine", "female_feminine"])
def test_voices_table_matches_the_corpus_genders(gender: str) -> None:
    table = pd.read_csv(demo_path() / "voices.tsv", sep="\t", dtype=str)
    frame = load_corpus("demo", installed().datasets()).frame
    by_speaker = frame.drop_duplicates("speaker").set_index("speaker")["gender_raw"]
    mine = table[table["gender"] == gender]
    assert (by_speaker.loc[mine["client_id"]] == gender).all()
    assert len(mine) == 50
