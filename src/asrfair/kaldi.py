"""Kaldi data directories: ``text``, ``utt2spk``, optional ``spk2gender`` and ``wav.scp``.

Kaldi, ESPnet, k2/icefall and WeNet recipes keep a test set as such a folder and write a
decode's hypotheses as another ``text`` file (``utt-id word word...``). Reading them as they
are spares the user a conversion script that could pair an utterance with the wrong speaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from asrfair.corpus import canonical_gender
from asrfair.errors import AsrfairError
from asrfair.transcripts import read_text, source_name


@dataclass(frozen=True)
class Entry:
    """The fields after a key, and the line they stand on (for messages)."""

    fields: list[str]
    line: int


def read_table_file(path: Path, expected: str, *, min_fields: int = 1) -> dict[str, Entry]:
    """``key value...`` per line (Kaldi's archive text), keys unique; values may be empty."""
    table: dict[str, Entry] = {}
    for number, raw in enumerate(read_text(path, expected).split("\n"), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) < min_fields:
            raise AsrfairError(f"{source_name(path)}, line {number}: expected {expected}")
        if fields[0] in table:
            raise AsrfairError(
                f"{source_name(path)}, line {number}: {fields[0]!r} is also on line "
                f"{table[fields[0]].line}; keys must be unique"
            )
        table[fields[0]] = Entry(fields[1:], number)
    return table


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise AsrfairError(
            f"{folder}: not a Kaldi data directory (no {name}); expected text and utt2spk "
            "(spk2gender and wav.scp optional)"
        )
    return path


def read_data_dir(folder: Path) -> pd.DataFrame:
    """``id``, ``sentence``, ``speaker``, and ``gender`` from ``spk2gender`` (m/f: male/female)."""
    text = read_table_file(_require(folder, "text"), "'utterance-id transcript' per line")
    utt2spk = read_table_file(
        _require(folder, "utt2spk"), "'utterance-id speaker-id' per line", min_fields=2
    )
    missing = next((u for u in text if u not in utt2spk), None)
    if missing is not None:
        raise AsrfairError(
            f"{folder / 'utt2spk'}: no speaker for utterance {missing!r} (text, line "
            f"{text[missing].line}); every utterance needs a line 'utterance-id speaker-id'"
        )
    frame = pd.DataFrame(
        {
            "id": list(text),
            "sentence": [" ".join(entry.fields) for entry in text.values()],
            "speaker": [utt2spk[u].fields[0] for u in text],
        }
    )
    if (folder / "spk2gender").is_file():
        frame["gender"] = _genders(folder / "spk2gender", frame["speaker"])
    return frame


def _genders(path: Path, speakers: pd.Series) -> list[str]:
    spk2gender = read_table_file(path, "'speaker-id m|f' per line", min_fields=2)
    missing = next((s for s in speakers if s not in spk2gender), None)
    if missing is not None:
        raise AsrfairError(
            f"{path}: no gender for speaker {missing!r}; give every speaker of utt2spk a line "
            "'speaker-id m|f'"
        )
    return [canonical_gender(spk2gender[s].fields[0]) for s in speakers]


def load_kaldi(ref_dir: Path, hyp_path: Path) -> pd.DataFrame:
    """The data directory's utterances with the decode's hypotheses, paired by utterance id."""
    if not ref_dir.is_dir():
        hint = f"; give its folder, --ref-file {ref_dir.parent}" if ref_dir.name == "text" else ""
        raise AsrfairError(
            f"--ref-file {ref_dir}: not a folder; a Kaldi reference is a data directory with "
            f"text and utt2spk{hint}"
        )
    frame = read_data_dir(ref_dir).rename(columns={"sentence": "ref"})
    hyps = read_table_file(hyp_path, "'utterance-id words' per line (an id alone: empty)")
    utt = next((u for u in frame["id"] if u not in hyps), None)
    if utt is not None:
        raise AsrfairError(
            f"{hyp_path}: no hypothesis for utterance {utt!r} of {ref_dir / 'text'}; add a "
            f"line '{utt}' for an empty hypothesis"
        )
    known = set(frame["id"])
    extra = next((u for u in hyps if u not in known), None)
    if extra is not None:
        raise AsrfairError(
            f"{hyp_path}, line {hyps[extra].line}: utterance {extra!r} is not in "
            f"{ref_dir / 'text'}; score the hypotheses of one test set"
        )
    return frame.assign(hyp=[" ".join(hyps[u].fields) for u in frame["id"]])


def read_wav_scp(folder: Path) -> dict[str, str]:
    """Utterance id -> audio path. Kaldi also allows commands (``sox ... |``) and archive
    offsets (``foo.ark:123``); asrfair decodes files itself, so those are refused by line."""
    path = _require(folder, "wav.scp")
    if (folder / "segments").is_file():
        raise AsrfairError(
            f"{folder / 'segments'}: utterances cut from longer recordings are not read; "
            "extract one audio file per utterance and list them in wav.scp"
        )
    table = read_table_file(path, "'utterance-id path' per line", min_fields=2)
    for utt, entry in table.items():
        where, target = f"{path}, line {entry.line}", " ".join(entry.fields)
        if len(entry.fields) > 1 or target.endswith("|") or target == "-":
            raise AsrfairError(
                f"{where}: {utt!r} is read through a command ({target}); asrfair reads plain "
                "audio files: write the audio out and list its path"
            )
        if ".ark:" in target:
            raise AsrfairError(f"{where}: {utt!r} points into an archive; list an audio file")
    return {utt: entry.fields[0] for utt, entry in table.items()}


def load_kaldi_corpus(folder: Path) -> pd.DataFrame:
    """A data directory as a dataset: the Corpus columns, with audio from ``wav.scp``."""
    frame = read_data_dir(folder)
    wavs = read_wav_scp(folder)
    missing = next((u for u in frame["id"] if u not in wavs), None)
    if missing is not None:
        raise AsrfairError(f"{folder / 'wav.scp'}: no audio for utterance {missing!r}")
    return frame.assign(audio=[wavs[u] for u in frame["id"]])
