"""Reading transcripts files (CSV, TSV, JSONL) for ``asrfair score`` and ``compare``.

Transcripts can come from any ASR system, so every problem is reported as one
line that names the file, the row or the option, and how to fix it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from asrfair.errors import AsrfairError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
IDS_FROM_LINES = "asrfair_ids_from_line_numbers"  # frame.attrs flag: the file had no ids


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what; ``explicit`` lists options the user set by hand."""

    ref: str = "ref"
    hyp: str = "hyp"
    id: str = "id"
    speaker: str = "speaker"
    explicit: frozenset[str] = frozenset()


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise AsrfairError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AsrfairError(
            f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise AsrfairError(f"{path}: the file is empty; expected a header and a row per utterance")
    return text


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AsrfairError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise AsrfairError(f"{path}, line {number}: expected a JSON object per line")
        nested = [key for key, value in record.items() if isinstance(value, dict | list)]
        if nested:
            raise AsrfairError(
                f"{path}, line {number}: {nested[0]!r} holds a list or an object; every value "
                "must be a string, a number or null"
            )
        records.append(record)
    return pd.DataFrame.from_records(records).astype("string").fillna("")


def _read_table(path: Path, text: str, sep: str) -> pd.DataFrame:
    """Every row must have the header's number of fields: pandas would otherwise shift the
    columns of a row with one field too many (taking the first as an index) or pad a short
    one with blanks, and the scores would be wrong without a word."""
    quoting: Literal[0, 3] = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    rows: list[list[str]] = []
    try:
        header = next(reader)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != len(header):
                hint = "quote fields that contain" if sep == "," else "remove stray"
                name = "commas" if sep == "," else "tabs"
                raise AsrfairError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header has "
                    f"{len(header)}; {hint} {name}"
                )
            rows.append(row)
    except csv.Error as exc:
        raise AsrfairError(f"{path}, line {reader.line_num}: malformed table ({exc})") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise AsrfairError(f"{path}: column {repeated[0]!r} is in the header twice; rename one")
    if not rows:
        raise AsrfairError(f"{path}: a header but no rows; expected one row per utterance")
    return pd.DataFrame(rows, columns=header, dtype=str)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL file as strings; the format comes from the file's suffix."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise AsrfairError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv or .jsonl")
    text = _read_text(path)
    if kind == "jsonl":
        return _read_jsonl(path, text)
    return _read_table(path, text, "\t" if kind == "tsv" else ",")


def _require(path: Path, frame: pd.DataFrame, column: str, option: str) -> None:
    if column not in frame.columns:
        have = ", ".join(map(str, frame.columns))
        raise AsrfairError(f"{path}: no column {column!r} ({option}); columns are: {have}")


def _line_of(path: Path, index: int) -> int:
    """1-based line in the file of data row ``index`` (tables have a header line)."""
    return index + (1 if path.suffix.lower() in (".jsonl", ".ndjson") else 2)


def load_transcripts(
    path: Path, columns: Columns = Columns(), groupings: Sequence[str] = ()
) -> pd.DataFrame:
    """A frame with ``id``, ``ref``, ``hyp``, maybe ``speaker``, and the grouping columns."""
    frame = read_table(path)
    _require(path, frame, columns.ref, "--ref-col")
    _require(path, frame, columns.hyp, "--hyp-col")
    out = pd.DataFrame(index=frame.index)
    if columns.id in frame.columns or "id" in columns.explicit:
        _require(path, frame, columns.id, "--id-col")
        out["id"] = frame[columns.id].astype(str)
    else:  # no id column and none asked for: ids are the file's line numbers
        out["id"] = [f"line-{_line_of(path, i)}" for i in range(len(frame))]
        out.attrs[IDS_FROM_LINES] = True
    duplicated = out["id"].duplicated(keep=False)
    if duplicated.any():
        first = out["id"][duplicated].iloc[0]
        lines = [_line_of(path, int(i)) for i in out.index[out["id"] == first]]
        raise AsrfairError(
            f"{path}: duplicate utterance id {first!r} on lines {lines[0]} and {lines[1]} "
            f"(--id-col {columns.id}); ids must be unique"
        )
    out["ref"] = frame[columns.ref].fillna("").astype(str)
    out["hyp"] = frame[columns.hyp].fillna("").astype(str)
    if columns.speaker in frame.columns or "speaker" in columns.explicit:
        _require(path, frame, columns.speaker, "--speaker-col")
        out["speaker"] = frame[columns.speaker].astype(str)
    for grouping in groupings:
        for part in grouping.split("*"):
            _require(path, frame, part, "--groups")
            if part in ("id", "ref", "hyp", "speaker") and getattr(columns, part) != part:
                raise AsrfairError(
                    f"--groups: column {part!r} clashes with asrfair's own {part!r} column; "
                    "rename it in the file"
                )
            out[part] = frame[part].astype(str)
    result = out.reset_index(drop=True)
    result.attrs = dict(out.attrs)
    return result
