"""Reading transcripts tables (CSV, TSV, JSONL, Parquet) for ``asrfair score`` and ``compare``.

Transcripts can come from any ASR system, so every problem is reported as one
line that names the file, the row or the option, and how to fix it.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.groups import columns_of

# NeMo writes its JSON-lines manifests with a ".json" suffix: read as JSONL, never as one document.
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TABLE_KINDS = ("csv", "tsv", "jsonl", "parquet")
STDIN = Path("-")
IDS_FROM_LINES = "asrfair_ids_from_line_numbers"  # frame.attrs flag: the file had no ids
NOTES = "asrfair_notes"  # frame.attrs: what reading the rows changed, for the report's warnings

# A sentence or a long-form transcript may exceed the csv module's default cap of 131,072
# characters; 1 GiB is more than any transcript and less than any platform's C long.
FIELD_LIMIT = 2**30


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what; ``explicit`` lists options the user set by hand."""

    ref: str = "ref"
    hyp: str = "hyp"
    id: str = "id"
    speaker: str = "speaker"
    explicit: frozenset[str] = frozenset()


def source_name(path: Path) -> str:
    """How messages name an input: ``-`` is standard input."""
    return "<stdin>" if path == STDIN else str(path)


def read_text(path: Path, expected: str = "a header and a row per utterance") -> str:
    """A user's text file (or ``-``, standard input) as UTF-8; ``expected`` says what an empty
    one should have held, since asrfair reads several formats through this one door."""
    if path == STDIN:
        raw = sys.stdin.buffer.read()
    elif not path.is_file():
        raise AsrfairError(f"{path}: no such file")
    else:
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AsrfairError(
            f"{source_name(path)}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise AsrfairError(f"{source_name(path)}: the file is empty; expected {expected}")
    return text


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records: list[dict[str, object]] = []
    keys: dict[str, int] = {}  # every key seen, with the line that first had it
    # Lines end at "\n" only: JSON text may hold U+2028 or U+0085, which splitlines() would cut.
    for number, line in enumerate(text.split("\n"), start=1):
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
        if records and set(record) != set(keys):
            raise AsrfairError(_key_mismatch(path, number, record, keys))
        keys = keys or dict.fromkeys(record, number)
        records.append(record)
    # nulls stay null here: select_columns counts a null ref or hyp before it scores it as ""
    return pd.DataFrame.from_records(records).astype("string")


def _key_mismatch(path: Path, number: int, record: dict[str, object], keys: dict[str, int]) -> str:
    """Like a CSV row with a field missing: a key left out (or misspelt) would score as empty."""
    lacking = [k for k in keys if k not in record]
    if lacking:
        return (
            f"{path}, line {number}: no {lacking[0]!r} key, which the first line has; give every "
            "line the same keys (null for a missing value)"
        )
    extra = next(k for k in record if k not in keys)
    return (
        f"{path}, line {number}: key {extra!r} is not on the first line; give every line the "
        "same keys (null for a missing value)"
    )


@dataclass
class _Parsed:
    header: list[str]
    rows: list[list[str]]
    lines: list[tuple[int, int]]  # first and last line in the file of the header, each row


def _parse_table(path: Path, text: str, sep: str, quoting: Literal[0, 3], strict: bool) -> _Parsed:
    """Every row must have the header's number of fields: pandas would otherwise shift the
    columns of a row with one field too many (taking the first as an index) or pad a short
    one with blanks, and the scores would be wrong without a word."""
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=strict
    )
    rows: list[list[str]] = []
    lines: list[tuple[int, int]] = []
    try:
        header = next(reader)
        last = reader.line_num
        lines.append((1, last))
        for row in reader:
            first, last = last + 1, reader.line_num
            if not row or (first == last and len(row) == 1 and not row[0].strip(" ")):
                continue  # a blank line (a quoted tab or line break alone is a cell, not one)
            if len(row) != len(header):
                hint = "quote fields that contain" if sep == "," else "remove stray"
                name = "commas" if sep == "," else "tabs"
                raise AsrfairError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header has "
                    f"{len(header)}; {hint} {name}"
                )
            rows.append(row)
            lines.append((first, last))
    except csv.Error as exc:
        raise AsrfairError(f"{path}, line {reader.line_num}: malformed table ({exc})") from None
    return _Parsed(header, rows, lines)


def _parse_tsv(path: Path, text: str) -> _Parsed:
    """A TSV that Python's csv module, pandas or a spreadsheet wrote quotes the fields that
    hold a tab, a line break or a double quote (``"il a dit ""oui"" puis"``): read as
    written, such a cell kept its quotes or split in two. A TSV written as is (Common
    Voice's way) may hold quotes that are text (``"Oui", dit-il``). So a TSV is read with
    quoting when every field that starts with a quote is a well-formed quoted field and
    every row then has the header's width, and as written otherwise. Where both readings
    work and a quoted field runs over lines (a quotation split over two utterances, or a
    quoted newline), they give different rows: that file is refused, not guessed at."""
    try:
        quoted = _parse_table(path, text, "\t", csv.QUOTE_MINIMAL, strict=True)
    except AsrfairError:
        return _parse_table(path, text, "\t", csv.QUOTE_NONE, strict=False)
    spans = [(first, last) for first, last in quoted.lines if first != last]
    if spans:
        try:
            _parse_table(path, text, "\t", csv.QUOTE_NONE, strict=False)
        except AsrfairError:
            return quoted  # as written it has rows of the wrong width: quoting it is
        first, last = spans[0]
        raise AsrfairError(
            f"{path}, lines {first}-{last}: ambiguous quoting: read with quoting (as pandas "
            f"writes TSVs) they are one row, read as written (as Common Voice writes them) "
            f"{last - first + 1} rows; save the file as JSONL, or as CSV with quoting"
        )
    return quoted


def _read_table(path: Path, text: str, sep: str) -> pd.DataFrame:
    if sep == "\t":
        parsed = _parse_tsv(path, text)
    else:
        parsed = _parse_table(path, text, sep, csv.QUOTE_MINIMAL, strict=False)
    header, rows = parsed.header, parsed.rows
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise AsrfairError(f"{path}: column {repeated[0]!r} is in the header twice; rename one")
    if not rows:
        raise AsrfairError(f"{path}: a header but no rows; expected one row per utterance")
    return pd.DataFrame(rows, columns=header, dtype=str)


def table_kind(path: Path) -> str:
    """The table format a suffix names; standard input is told by its first line instead."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None and path.name == "text":  # a Kaldi decode's hypotheses
        raise AsrfairError(
            f"{path}: a Kaldi 'text' file; name its data directory with --ref-file DATA_DIR "
            "(the folder holding text and utt2spk)"
        )
    if kind is None:
        raise AsrfairError(
            f"{path}: unknown format {path.suffix!r}; use .csv, .tsv, .jsonl (.json for NeMo "
            "manifests) or .parquet, or name it with --input-format"
        )
    return kind


def sniff_kind(text: str) -> str:
    """Standard input has no suffix: a JSON object first is JSONL, a tab in the header TSV."""
    first = next(line for line in text.split("\n") if line.strip())
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def read_table(path: Path, kind: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL/Parquet file as strings; the format is ``kind``, else the suffix."""
    kind = kind or table_kind(path)
    if kind == "parquet":
        return _read_parquet(path)
    return parse_table(path, read_text(path), kind)


def parse_table(path: Path, text: str, kind: str) -> pd.DataFrame:
    """A CSV, TSV or JSONL text already read (from a file or standard input) as strings."""
    if kind == "jsonl":
        return _read_jsonl(path, text)
    return _read_table(path, text, "\t" if kind == "tsv" else ",")


def _is_nested(value: object) -> bool:
    """pyarrow gives a list column as numpy arrays, a struct column as dicts."""
    return isinstance(value, list | dict | tuple) or hasattr(value, "shape")


def _read_parquet(path: Path) -> pd.DataFrame:
    """Parquet columns may hold numbers, lists or structs; asrfair's cells are text, so a
    nested column is refused by name, and the rest become strings as CSV cells would be."""
    if not path.is_file():
        raise AsrfairError(f"{path}: no such file")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AsrfairError(f"{path}: not a readable Parquet file ({first})") from None
    for column in frame.columns:
        if frame[column].map(_is_nested).any():
            raise AsrfairError(
                f"{path}: column {column!r} holds lists or structs; every value must be a "
                "string, a number or null"
            )
    if frame.empty:
        raise AsrfairError(f"{path}: no rows; expected one row per utterance")
    return frame.astype("string")  # nulls stay null, as for JSONL


def _require(source: str, frame: pd.DataFrame, column: str, option: str) -> None:
    if column not in frame.columns:
        have = ", ".join(map(str, frame.columns))
        raise AsrfairError(f"{source}: no column {column!r} ({option}); columns are: {have}")


def line_of(kind: str) -> Callable[[int], int] | None:
    """1-based line in the file of data row ``i`` (tables have a header line); Parquet has no
    lines, so its rows are named by position."""
    if kind == "parquet":
        return None
    offset = 1 if kind == "jsonl" else 2
    return lambda index: index + offset


def load_transcripts(
    path: Path, columns: Columns = Columns(), groupings: Sequence[str] = ()
) -> pd.DataFrame:
    """A frame with ``id``, ``ref``, ``hyp``, maybe ``speaker``, and the grouping columns."""
    kind = table_kind(path)
    return select_columns(
        read_table(path, kind), columns, groupings, source=str(path), line=line_of(kind)
    )


def _missing_text(frame: pd.DataFrame, columns: Columns, noun: str) -> list[str]:
    """A missing (null) reference or hypothesis is scored as empty text, which counts every
    word of the other as an error: say how many rows that is, so it is never silent."""
    notes = []
    for name, column in (("reference", columns.ref), ("hypothesis", columns.hyp)):
        missing = int(frame[column].isna().sum())
        if missing:
            effect = "insertions" if name == "reference" else "deletions"
            notes.append(
                f"{missing:,} of {len(frame):,} {noun} have no {name} ({column} is null): "
                f"scored as empty text, so their words count as {effect}"
            )
    return notes


def select_columns(
    frame: pd.DataFrame,
    columns: Columns = Columns(),
    groupings: Sequence[str] = (),
    *,
    source: str = "data",
    line: Callable[[int], int] | None = None,
) -> pd.DataFrame:
    """asrfair's columns taken from a table read from a file or handed in from Python.

    ``line(i)`` names the file line of row ``i`` in messages; without it rows are named by
    their position, and ids default to it.
    """
    where = line or (lambda i: i)
    noun = "lines" if line else "rows"
    frame = frame.reset_index(drop=True)
    repeated = frame.columns[frame.columns.duplicated()].tolist()
    if repeated:
        raise AsrfairError(f"{source}: column {repeated[0]!r} appears twice; keep one")
    if frame.empty:
        raise AsrfairError(f"{source}: no rows to score")
    _require(source, frame, columns.ref, "--ref-col")
    _require(source, frame, columns.hyp, "--hyp-col")
    out = pd.DataFrame(index=frame.index)
    if columns.id in frame.columns or "id" in columns.explicit:
        _require(source, frame, columns.id, "--id-col")
        out["id"] = frame[columns.id].astype("string").fillna("").astype(str)
    else:  # no id column and none asked for: ids are the line (or row) numbers
        out["id"] = [f"{noun[:-1]}-{where(i)}" for i in range(len(frame))]
        out.attrs[IDS_FROM_LINES] = True
    duplicated = out["id"].duplicated(keep=False)
    if duplicated.any():
        first = out["id"][duplicated].iloc[0]
        rows = [where(int(i)) for i in out.index[out["id"] == first]]
        raise AsrfairError(
            f"{source}: duplicate utterance id {first!r} on {noun} {rows[0]} and {rows[1]} "
            f"(--id-col {columns.id}); ids must be unique"
        )
    out["ref"] = frame[columns.ref].fillna("").astype(str)
    out["hyp"] = frame[columns.hyp].fillna("").astype(str)
    out.attrs[NOTES] = _missing_text(frame, columns, noun)
    if columns.speaker in frame.columns or "speaker" in columns.explicit:
        _require(source, frame, columns.speaker, "--speaker-col")
        out["speaker"] = frame[columns.speaker].astype("string").fillna("").astype(str)
    for grouping in groupings:
        for part in columns_of(grouping):
            _require(source, frame, part, "--groups")
            if part in ("id", "ref", "hyp", "speaker") and getattr(columns, part) != part:
                raise AsrfairError(
                    f"--groups: column {part!r} clashes with asrfair's own {part!r} column; "
                    "rename it in the file"
                )
            out[part] = frame[part].astype("string").fillna("").astype(str)
    # The input's other columns ride along untouched, for metrics that read them (a covariate
    # such as duration); asrfair's own statistics never do.
    used = {columns.id, columns.ref, columns.hyp, columns.speaker, *out.columns}
    for name in frame.columns:
        if isinstance(name, str) and name not in used:
            out[name] = frame[name]
    result = out.reset_index(drop=True)
    result.attrs = dict(out.attrs)
    return result
