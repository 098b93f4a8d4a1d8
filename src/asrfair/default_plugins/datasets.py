"""Built-in datasets: Common Voice release folders, Hugging Face datasets, manifests, the demo."""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

import pandas as pd

from asrfair import hookimpl
from asrfair.corpus import Corpus, DatasetLoader
from asrfair.errors import AsrfairError
from asrfair.hfdata import (
    SENTENCE_COLUMNS,
    SPEAKER_COLUMNS,
    audio_columns,
    hf_frame,
    load_hf_dataset,
    parse_hf_spec,
    split_parts,
)
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
    "speaker": SPEAKER_COLUMNS,
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
    return Corpus(
        f"manifest:{path}", read_table(path).fillna(""), root=path.parent, aliases=MANIFEST_ALIASES
    )


def load_hf(arg: str | None) -> Corpus:
    """``hf:NAME_OR_PATH[:CONFIG][@SPLIT]``: audio read undecoded (path or bytes) by our stage.

    The dataset's own column names are left for ``load_corpus``, which applies ``--columns``
    first and then the aliases below (asrfair.hfdata names them, in order of preference)."""
    if not arg:
        raise AsrfairError("--dataset hf:NAME_OR_PATH[:CONFIG][@SPLIT] needs a name or folder")
    from asrfair.audio import default_cache_dir

    name, config, split = parse_hf_spec(arg)
    where = f"hf:{arg}"
    frames, audio_cols = [], []
    for split_name, ds in split_parts(load_hf_dataset(name, config, where), split, where):
        audio_cols += [c for c in audio_columns(ds) if c not in audio_cols]
        frames.append(hf_frame(ds, default_cache_dir() / "hf-audio").assign(split=split_name))
    frame = pd.concat(frames, ignore_index=True)
    if "id" not in frame.columns:
        frame["id"] = [f"{s}-{i}" if s else str(i) for i, s in enumerate(frame["split"])]
    aliases = {
        "audio": (*audio_cols, "audio", "path", "audio_filepath", "file"),
        "sentence": SENTENCE_COLUMNS,
        "speaker": SPEAKER_COLUMNS,
        "accents": ("accents", "accent"),
    }
    return Corpus(where, frame, aliases=aliases)


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
