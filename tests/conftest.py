"""Shared fixtures. Rich's width is pinned so that table output is the same everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "sclite"
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
