"""Which reader an input of ``score`` and ``compare`` goes to, by ``--input-format`` or suffix.

Tables (CSV, TSV, JSONL, NeMo manifests, Parquet, standard input) carry reference and
hypothesis in one file. Kaldi, sclite ``trn`` and ``stm``/``ctm`` keep the reference apart:
the positional argument is then the system's output and ``--ref-file`` the reference, so that
``compare`` takes two systems' outputs against one reference, as it takes two tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.hfdata import (
    SENTENCE_COLUMNS,
    SPEAKER_COLUMNS,
    hf_frame,
    load_hf_dataset,
    one_split,
    parse_hf_spec,
)
from asrfair.kaldi import load_kaldi
from asrfair.sclite import load_stm_ctm, load_trn
from asrfair.transcripts import (
    FORMATS,
    STDIN,
    TABLE_KINDS,
    Columns,
    line_of,
    parse_table,
    read_table,
    read_text,
    select_columns,
    sniff_kind,
    source_name,
)

PAIRED = ("kaldi", "trn", "ctm")  # formats whose reference is a file of its own
INPUT_FORMATS = ("auto", *TABLE_KINDS, "nemo", "hf", *PAIRED)
HF_PREFIX = "hf:"  # asrfair score hf:PATH[@SPLIT], as --dataset hf:... names one
# A format's own names for asrfair's columns, in order of preference: used where the user
# named no column and asrfair's own is absent (NeMo's manifest keys; HF datasets' names).
NEMO_COLUMNS: dict[str, tuple[str, ...]] = {
    "ref": ("text",),
    "hyp": ("pred_text",),
    "id": ("audio_filepath",),
}
FORMAT_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "nemo": NEMO_COLUMNS,
    "jsonl": NEMO_COLUMNS,
    "hf": {"ref": SENTENCE_COLUMNS, "speaker": SPEAKER_COLUMNS},
}


@dataclass(frozen=True)
class InputOptions:
    """How to read an input: its format, and what the formats with a separate reference need."""

    format: str = "auto"
    ref_file: Path | None = None
    speaker_from_id: str = "spu_id"  # trn: the speaker as a prefix of the utterance id
    stm_labels: tuple[str, ...] = ()  # stm: names of the <label> columns, in order
    split: str | None = None  # an HF DatasetDict's split, unless hf:PATH@SPLIT names one


def detect_format(path: Path, options: InputOptions) -> str:
    """The format named, else told by ``--ref-file`` and the suffixes."""
    if options.format not in INPUT_FORMATS:
        raise AsrfairError(
            f"--input-format {options.format!r}: choose one of {', '.join(INPUT_FORMATS)}"
        )
    if options.format != "auto":
        return options.format
    ref = options.ref_file
    if ref is not None:
        return _paired_format(path, ref)
    if str(path).startswith(HF_PREFIX) or is_saved_dataset(path):
        return "hf"
    if path != STDIN and path.is_dir():
        raise AsrfairError(
            f"{path} is a folder; for a Kaldi data directory pass the decode's text file and "
            f"the folder as the reference: asrfair score DECODE/text --ref-file {path}"
        )
    suffix = path.suffix.lower()
    if suffix in (".trn", ".ctm"):
        raise AsrfairError(
            f"{path}: a {suffix[1:]} file holds hypotheses only; name the reference with "
            f"--ref-file ({'ref.trn' if suffix == '.trn' else 'ref.stm'})"
        )
    if path == STDIN:
        return "auto"  # a table told by its first line (see transcripts.sniff_kind)
    return "nemo" if suffix == ".json" else FORMATS.get(suffix, "unknown")


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (or a DatasetDict's)."""
    return path != STDIN and any(
        (path / name).is_file() for name in ("state.json", "dataset_dict.json")
    )


def read_hf(spec: str, where: str, split: str | None = None) -> pd.DataFrame:
    """``[hf:]PATH[@SPLIT]``: one split of a saved HF dataset (or a hub name, with network);
    ``split`` is the one to read where the spec names none."""
    name, config, named = parse_hf_spec(spec.removeprefix(HF_PREFIX))
    loaded = load_hf_dataset(name, config, where)
    _, ds = one_split(loaded, named or split, where, how=f"{HF_PREFIX}{name}@SPLIT")
    return hf_frame(ds)


def _paired_format(path: Path, ref: Path) -> str:
    if path.suffix.lower() in FORMATS:
        raise AsrfairError(
            f"--ref-file is for Kaldi, trn and stm/ctm hypotheses; {path} is a table that holds "
            "references and hypotheses together: leave --ref-file out"
        )
    if ref.is_dir():
        return "kaldi"
    # Any suffix counts: hubscr's filtered files are named like ref.stm.filt.
    suffixes = {suffix.lower() for suffix in (*ref.suffixes, *path.suffixes)}
    if ".stm" in suffixes or ".ctm" in suffixes:
        return "ctm"
    if ".trn" in suffixes:
        return "trn"
    raise AsrfairError(
        f"--ref-file {ref}: cannot tell its format (a Kaldi data folder, .trn or .stm); name it "
        "with --input-format kaldi, trn or ctm"
    )


def read_input(path: Path, options: InputOptions) -> tuple[pd.DataFrame, str]:
    """The rows of an input as a table of strings, and the format they were read as."""
    kind = detect_format(path, options)
    if kind in PAIRED:
        return _read_paired(path, kind, options), kind
    if options.ref_file is not None:
        raise AsrfairError(
            f"--ref-file is for Kaldi, trn and stm/ctm inputs; {source_name(path)} is read as "
            f"{kind}, which holds references and hypotheses together"
        )
    if kind == "hf":
        return read_hf(str(path), source_name(path), options.split), kind
    if path == STDIN:
        if kind == "parquet":
            raise AsrfairError("-: Parquet is read from a file, not from standard input")
        text = read_text(STDIN)
        kind = sniff_kind(text) if kind == "auto" else kind
        return parse_table(Path(source_name(STDIN)), text, _table(kind)), kind
    return read_table(path, None if kind == "unknown" else _table(kind)), kind


def _table(kind: str) -> str:
    """A NeMo manifest is JSON lines; every other table kind is its own reader."""
    return "jsonl" if kind == "nemo" else kind


def _read_paired(path: Path, kind: str, options: InputOptions) -> pd.DataFrame:
    ref = options.ref_file
    if ref is None:
        raise AsrfairError(
            f"--input-format {kind} reads the hypotheses from {source_name(path)} and needs the "
            "reference: pass --ref-file"
        )
    if path == STDIN:
        raise AsrfairError(f"--input-format {kind}: read the hypotheses from a file, not '-'")
    if kind == "kaldi":
        return load_kaldi(ref, path)
    if kind == "trn":
        return load_trn(ref, path, options.speaker_from_id)
    return load_stm_ctm(ref, path, list(options.stm_labels))


def format_columns(frame: pd.DataFrame, columns: Columns, kind: str) -> Columns:
    """A format's own column names (NeMo's ``text`` and ``pred_text``; an HF dataset's
    ``text``, ``speaker_id``...) for asrfair's columns that the user did not name and the
    table does not have; the first one present is used."""
    names = FORMAT_COLUMNS.get(kind, {})

    def pick(role: str) -> str:
        own = str(getattr(columns, role))
        if own != role or role in columns.explicit or own in frame.columns:
            return own
        return next((c for c in names[role] if c in frame.columns), own)

    chosen: dict[str, Any] = {role: pick(role) for role in names}
    return replace(columns, **chosen)


def load_input(
    path: Path,
    columns: Columns | None = None,
    groupings: Sequence[str] = (),
    options: InputOptions | None = None,
) -> pd.DataFrame:
    """asrfair's columns (``id``, ``ref``, ``hyp``, ``speaker``, groups) from any input."""
    frame, kind = read_input(path, options or InputOptions())
    columns = format_columns(frame, columns or Columns(), kind)
    line = None if kind in (*PAIRED, "hf") else line_of(_table(kind))
    return select_columns(frame, columns, groupings, source=source_name(path), line=line)


def load_dataset_input(
    data: Any, split: str | None, columns: Columns, groupings: Sequence[str] = ()
) -> pd.DataFrame:
    """asrfair's columns from a ``datasets.Dataset`` handed in from Python, or from the
    ``split`` of a ``DatasetDict``, read as ``score hf:PATH@SPLIT`` reads a saved one."""
    where = f"datasets.{type(data).__name__}"
    _, ds = one_split(data, split, where, how="split='NAME'")
    frame = hf_frame(ds)
    columns = format_columns(frame, columns, "hf")
    return select_columns(frame, columns, groupings, source=where)
