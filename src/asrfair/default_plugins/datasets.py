"""Built-in datasets: Common Voice release folders, Hugging Face datasets, manifests, the demo."""

from __future__ import annotations

import csv
import hashlib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from asrfair import hookimpl
from asrfair.corpus import Corpus, DatasetLoader
from asrfair.errors import AsrfairError
from asrfair.files import replacing
from asrfair.kaldi import load_kaldi_corpus
from asrfair.registry import Register
from asrfair.transcripts import FIELD_LIMIT, read_table

CV_SPLITS = ("train", "dev", "test")
# The columns of a Common Voice 17 TSV, in order.
CV17_COLUMNS = (
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
)
# Renamed so that every release reads alike: CV 17 says "accents", older releases "accent".
CV_RENAME = {"client_id": "speaker", "accent": "accents"}


def read_cv_tsv(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A Common Voice TSV (unquoted: sentences may hold quotes). Malformed rows are counted."""
    notes: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        csv.field_size_limit(FIELD_LIMIT)
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise AsrfairError(f"{path}: empty file; expected a Common Voice header row") from None
        rows, bad = [], []
        for number, row in enumerate(reader, start=2):
            if len(row) == len(header):
                rows.append(row)
            elif row:
                bad.append(f"line {number} has {len(row)} fields, not {len(header)}")
    if bad:
        notes.append(f"{path.name}: skipped {len(bad):,} malformed row(s); first: {bad[0]}")
    return pd.DataFrame(rows, columns=header, dtype=str), notes


def load_commonvoice(arg: str | None) -> Corpus:
    """``commonvoice:PATH``: one locale's release folder, as the tarball unpacks it."""
    if not arg:
        raise AsrfairError("--dataset commonvoice:PATH needs the release folder, e.g. cv-17/fr")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise AsrfairError(f"commonvoice: {root} is not a folder")
    present = {name: (root / f"{name}.tsv").is_file() for name in ("validated", *CV_SPLITS)}
    missing = [f"{n}.tsv" for n in ("train", "test") if not present[n] and not present["validated"]]
    if not (root / "clips").is_dir():
        missing.append("clips/")
    if missing:
        raise AsrfairError(
            f"commonvoice: {root} is not a Common Voice release folder; missing: "
            f"{', '.join(missing)} (expected validated.tsv or train.tsv/test.tsv, and clips/)"
        )
    notes: list[str] = []
    parts = []
    for name in (*CV_SPLITS, "validated"):
        if present[name]:
            table, tsv_notes = read_cv_tsv(root / f"{name}.tsv")
            notes += tsv_notes
            if "path" not in table.columns or "sentence" not in table.columns:
                raise AsrfairError(f"{root / f'{name}.tsv'}: no 'path' or 'sentence' column")
            table["split"] = name if name != "validated" else "other"
            parts.append(table)
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("path", keep="first")
    frame = frame.rename(columns=CV_RENAME)
    frame["audio"] = [str(Path("clips") / p) for p in frame["path"]]
    frame["id"] = [Path(p).stem for p in frame["path"]]
    return Corpus(f"commonvoice:{root}", frame, notes, root=root)


MANIFEST_ALIASES = {
    "audio": ("audio", "audio_filepath", "path", "audio_path", "file", "filepath"),
    "sentence": ("sentence", "text", "transcript", "ref"),
    "speaker": ("speaker", "client_id", "speaker_id"),
}


def load_manifest(arg: str | None) -> Corpus:
    """``manifest:FILE``: a CSV/TSV/JSONL/Parquet table or a NeMo manifest (``.json``) with an
    audio path column, relative to the file; or ``manifest:DIR``, a Kaldi data directory whose
    ``wav.scp`` lists audio files (paths as Kaldi reads them: absolute, or from the working
    directory where the recipe runs).
    Columns go by the aliases above unless ``--columns`` names them."""
    if not arg:
        raise AsrfairError(
            "--dataset manifest:FILE needs a .csv, .tsv, .jsonl, .json or .parquet file, or a "
            "Kaldi data directory"
        )
    path = Path(arg).expanduser()
    if path.is_dir():
        frame = load_kaldi_corpus(path)
        return Corpus(f"manifest:{path}", frame, aliases=MANIFEST_ALIASES)
    return Corpus(f"manifest:{path}", read_table(path), root=path.parent, aliases=MANIFEST_ALIASES)


HF_ALIASES = {
    "sentence": ("sentence", "text", "transcription", "transcript"),
    "speaker": ("speaker", "speaker_id"),
}


def parse_hf_spec(arg: str) -> tuple[str, str | None, str | None]:
    """``NAME_OR_PATH[:CONFIG][@SPLIT]``."""
    rest, _, split = arg.partition("@")
    name, _, config = rest.partition(":")
    return name, config or None, split or None


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


def load_hf(arg: str | None) -> Corpus:
    """``hf:NAME_OR_PATH[:CONFIG][@SPLIT]``: audio read undecoded (path or bytes) by our stage."""
    if not arg:
        raise AsrfairError("--dataset hf:NAME_OR_PATH[:CONFIG][@SPLIT] needs a name or folder")
    import datasets

    from asrfair.audio import default_cache_dir

    name, config, split = parse_hf_spec(arg)
    try:
        if Path(name).expanduser().is_dir():
            loaded = datasets.load_from_disk(str(Path(name).expanduser()))
        else:
            loaded = datasets.load_dataset(name, config)
    except Exception as exc:
        raise AsrfairError(
            f"hf:{arg}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "without network, pass a folder saved with Dataset.save_to_disk"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = [split] if split else list(loaded)
        unknown = [s for s in splits if s not in loaded]
        if unknown:
            raise AsrfairError(
                f"hf:{arg}: no split {unknown[0]!r}; splits are: {', '.join(loaded)}"
            )
        parts = [(s, loaded[s]) for s in splits]
    else:
        parts = [(split or "", loaded)]
    frames = []
    for split_name, ds in parts:
        audio_cols = [c for c, f in ds.features.items() if isinstance(f, datasets.Audio)]
        for column in audio_cols:
            ds = ds.cast_column(column, datasets.Audio(decode=False))
        frame = ds.to_pandas()
        assert isinstance(frame, pd.DataFrame)
        column = audio_cols[0] if audio_cols else ("audio" if "audio" in frame.columns else "path")
        out_dir = default_cache_dir() / "hf-audio"
        frame["audio"] = [_materialise(a, out_dir) for a in frame[column]]
        frame["split"] = split_name
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True).rename(columns=CV_RENAME)
    if "id" not in frame.columns:
        frame["id"] = [f"{s}-{i}" if s else str(i) for i, s in enumerate(frame["split"])]
    return Corpus(f"hf:{arg}", frame, aliases=HF_ALIASES)


DEMO_DIR = "cv-fr-demo"


def demo_path() -> Path:
    return Path(str(files("asrfair") / "demo" / DEMO_DIR))


def load_demo(arg: str | None) -> Corpus:
    """The bundled espeak-ng French corpus, read exactly as a Common Voice release."""
    corpus = load_commonvoice(str(demo_path()))
    corpus.name = "demo"
    return corpus


@hookimpl
def register_datasets(register: Register[DatasetLoader]) -> None:
    register("commonvoice", load_commonvoice, help="commonvoice:PATH, a CV release folder")
    register("hf", load_hf, help="hf:NAME_OR_PATH[:CONFIG][@SPLIT], a Hugging Face dataset")
    register(
        "manifest",
        load_manifest,
        help="manifest:FILE, CSV/TSV/JSONL/Parquet/NeMo .json with audio paths, or a Kaldi dir",
    )
    register("demo", load_demo, help="the bundled espeak-ng French demo corpus")
