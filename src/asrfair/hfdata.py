"""Hugging Face ``datasets`` objects as the tables asrfair's stages read.

One place turns a ``Dataset`` (or one split of a ``DatasetDict``) into a DataFrame, for the
``hf:`` dataset loader, for ``asrfair score hf:PATH`` and for ``asrfair.score(ds)``, so that
the three agree on splits, column names and class labels. Audio is never decoded through
``datasets.Audio`` (which needs torchcodec and FFmpeg): audio columns are read undecoded and
their embedded bytes written once to a file that asrfair's own audio stage reads.

``datasets`` is imported inside the functions: ``asrfair score`` on a CSV must not pay for it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.files import replacing, unique_tag

# asrfair's canonical columns and the names HF datasets give them, in order of preference: the
# first one present is used (the canonical name itself first), and a note names the others.
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
SENTENCE_COLUMNS = ("sentence", "text", "transcription", "normalized_text", "transcript")


def parse_hf_spec(arg: str) -> tuple[str, str | None, str | None]:
    """``NAME_OR_PATH[:CONFIG][@SPLIT]``."""
    rest, _, split = arg.partition("@")
    name, _, config = rest.partition(":")
    return name, config or None, split or None


def load_hf_dataset(name: str, config: str | None, where: str) -> Any:
    """A ``Dataset`` or ``DatasetDict`` from a ``save_to_disk`` folder, else from the hub."""
    import datasets

    try:
        if Path(name).expanduser().is_dir():
            return datasets.load_from_disk(str(Path(name).expanduser()))
        return datasets.load_dataset(name, config)
    except Exception as exc:
        raise AsrfairError(
            f"{where}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "without network, pass a folder saved with Dataset.save_to_disk"
        ) from None


def is_hf_dataset(data: object) -> bool:
    """Whether ``data`` is a ``datasets.Dataset`` or ``DatasetDict``. A caller that made one
    has imported ``datasets`` already, so a pandas user never imports it here."""
    module = sys.modules.get("datasets")
    return module is not None and isinstance(data, module.Dataset | module.DatasetDict)


def split_parts(loaded: Any, split: str | None, where: str) -> list[tuple[str, Any]]:
    """``(split name, Dataset)`` pairs: the named split, else every split of a DatasetDict
    (a plain Dataset is one part named by ``split``, or ``""``)."""
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return [(split or "", loaded)]
    if split is not None and split not in loaded:
        raise AsrfairError(f"{where}: no split {split!r}; splits are: {', '.join(loaded)}")
    return [(s, loaded[s]) for s in ([split] if split else list(loaded))]


def one_split(loaded: Any, split: str | None, where: str, how: str) -> tuple[str, Any]:
    """The one split a table of transcripts is read from: a DatasetDict with several splits
    and none named is ambiguous (scoring train and test together is rarely meant). ``how``
    says how the caller names one, e.g. ``split='test'``."""
    parts = split_parts(loaded, split, where)
    if len(parts) > 1:
        names = ", ".join(name for name, _ in parts)
        raise AsrfairError(f"{where}: a DatasetDict with splits {names}; pick one with {how}")
    if not parts:
        raise AsrfairError(f"{where}: the DatasetDict has no splits")
    return parts[0]


def audio_columns(ds: Any) -> list[str]:
    """The columns whose feature is ``datasets.Audio``, in the dataset's order."""
    import datasets

    return [c for c, f in ds.features.items() if isinstance(f, datasets.Audio)]


def hf_frame(ds: Any, audio_dir: Path | None = None) -> pd.DataFrame:
    """A Dataset's rows as a DataFrame: class labels as their names (FLEURS' ``gender`` is
    0/1/2 otherwise), and each audio column as file paths written under ``audio_dir``, or
    dropped without one (scoring reads no audio)."""
    import datasets

    audio_cols = audio_columns(ds)
    if audio_dir is None:
        ds = ds.remove_columns(audio_cols)
    else:
        for column in audio_cols:
            ds = ds.cast_column(column, datasets.Audio(decode=False))
    frame = ds.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    for column, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):
            frame[column] = [feature.int2str(int(v)) if v >= 0 else "" for v in frame[column]]
    if audio_dir is not None:
        for column in audio_cols:
            frame[column] = [_materialise(a, audio_dir) for a in frame[column]]
    return frame


def _materialise(audio: Any, out_dir: Path) -> str:
    """A path for an undecoded HF audio value: its own path, or its bytes written once."""
    if isinstance(audio, str):
        return audio
    path, data = audio.get("path"), audio.get("bytes")
    if data:
        digest = hashlib.sha1(data).hexdigest()
        target = out_dir / f"{digest}{Path(path or '').suffix or '.wav'}"
        # Named by its content: a file of the right size is that content, anything else (a
        # write cut short) is written again, whole or not at all.
        if not target.is_file() or target.stat().st_size != len(data):
            with replacing(target) as tmp:
                tmp.write_bytes(data)
        return str(target)
    return str(path or "")


def saved_for_audit(data: Any, root: Path) -> str:
    """An in-memory Dataset or DatasetDict as an ``hf:`` spec an audit can record and resume:
    it is saved once under ``root``, named by its fingerprint (the same data, the same folder),
    so the run's config.json names data that can be read again."""
    names = sorted(data.keys()) if hasattr(data, "keys") else [""]
    parts = [data[k] for k in names] if hasattr(data, "keys") else [data]
    prints = [getattr(part, "_fingerprint", None) for part in parts]
    if not all(prints):
        raise AsrfairError(
            "dataset: this Dataset has no fingerprint to name it by; save it with "
            "save_to_disk(FOLDER) and pass dataset='hf:FOLDER'"
        )
    named = [f"{name}={fingerprint}" for name, fingerprint in zip(names, prints, strict=True)]
    key = hashlib.sha256("|".join(named).encode()).hexdigest()[:16]  # splits named too
    folder = root / f"dataset-{key}"
    if not folder.is_dir():
        partial = root / f".dataset-{key}.{unique_tag()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        data.save_to_disk(str(partial))
        os.replace(partial, folder)  # whole or not at all: a crash leaves no half dataset
    return f"hf:{folder}"
