"""Property-based tests (issue 9, item 13): the transcript readers and the exporters.

1. Any table that Python's csv module writes, CSV or TSV, reads back cell by cell.
2. Any group label (and any grouping name) survives the rich, JSON, CSV, Markdown and LaTeX
   exports: it can be recovered from each, and no table row is broken.

The one character that cannot be in a file at all is a lone surrogate (U+D800-U+DFFF): it has
no UTF-8 encoding, so no file can hold it. Everything else is drawn, NUL, escape and the
Unicode line separators (U+0085, U+2028) included; a cell is text, whatever it holds.

Hypothesis runs derandomised (the profile in conftest.py), so CI sees the same examples on
every run. The ``@example`` cases are inputs that failed before the fixes their comments
name (and one that pins the CSV formula neutraliser).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from asrfair.default_plugins.exporters import (
    csv_cell,
    latex_escape,
    markdown_escape,
    one_line,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
    to_rich,
)
from asrfair.errors import AsrfairError
from asrfair.metrics import DEFAULT_METRICS, run_metrics
from asrfair.plugins import installed
from asrfair.report import Report, report_tables
from asrfair.scoring import RESERVED, score
from asrfair.stats import StatsConfig
from asrfair.text import identity
from asrfair.transcripts import IDS_FROM_LINES, load_transcripts, read_table
from conftest import requires_tool

# -- strategies ------------------------------------------------------------------------------

# Pieces that have broken (or could break) a reader or an exporter: delimiters, quotes, line
# breaks of every kind, formula starts, rich markup, Markdown and LaTeX specials, HTML, a
# terminal escape sequence, a byte-order mark, a combining mark, an emoji with a joiner.
HOSTILE = [
    ",", '"', "'", "\t", "\n", "\r", "\r\n", "\n\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028",
    "=", "+", "-", "@", "=HYPERLINK(\"x\")", "[/oops]", "[bold]", ":smile:", "|", "\\", "*",
    "_", "$", "`", "&", "%", "#", "{", "}", "~", "^", "\\textbf{", "<b>", "</td>", "<script>",
    "\x00", "\x1b[2J", "\x7f", "\ufeff", "e\u0301", "\u200b", "\u202e", "👩\u200d🔬", "漢字", " ",
]  # fmt: skip
# Any code point but a surrogate (see the module docstring).
ANY_CHAR = st.characters(exclude_categories=("Cs",))
cells = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(ANY_CHAR, max_size=4)), max_size=5
).map("".join)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """A header of distinct names and 1-4 rows. Two columns at least: a transcripts file has
    ``ref`` and ``hyp``, and in a one-column table a row holding "" is a blank line."""
    width = draw(st.integers(2, 5))
    header = draw(st.lists(cells, min_size=width, max_size=width, unique=True))
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), min_size=1, max_size=4))
    return header, rows


def _write(path: Path, rows: list[list[str]], sep: str, lineterminator: str) -> str:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=sep, lineterminator=lineterminator).writerows(rows)
    return path.read_bytes().decode("utf-8")


# -- 1. readers -------------------------------------------------------------------------------

SEPARATORS = pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])


@SEPARATORS
@settings(max_examples=200)
@given(table=tables(), lineterminator=st.sampled_from(["\r\n", "\n"]))
# pandas and the csv module quote a TSV cell holding a quote, a tab or a newline; the reader
# took TSVs as unquoted, so this cell kept its quotes (or split in two at the tab).
@example(table=(["ref", "hyp"], [['il a dit "oui"', "a\tb"]]), lineterminator="\n")
def test_any_table_the_csv_module_writes_reads_back_cell_by_cell(
    suffix: str, sep: str, table: tuple[list[str], list[list[str]]], lineterminator: str
) -> None:
    header, rows = table
    if lineterminator == "\n":
        # Python 3.11's writer quotes a field only for the line terminator's own characters,
        # so with "\n" (pandas' choice) it writes a lone "\r" bare, and no reader can tell that
        # from a line end: such a file is broken when written. The default "\r\n" quotes both.
        header = [c.replace("\r", "\n") for c in header]
        rows = [[c.replace("\r", "\n") for c in row] for row in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        text = _write(path, [header, *rows], sep, lineterminator)
        # The one normalisation: a byte-order mark that starts the file is the encoding's, not
        # the first header cell's (the reader decodes utf-8-sig, as spreadsheets write it).
        expected_header = list(header)
        if text.startswith("\ufeff"):
            expected_header[0] = expected_header[0][1:]
        if len(set(expected_header)) < len(header):
            return  # two columns now share a name, which the reader refuses by design
        frame = read_table(path)
    assert list(frame.columns) == expected_header
    assert frame.shape == (len(rows), len(header))
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            assert frame.iat[r, c] == cell, (r, c)


@SEPARATORS
@settings(max_examples=100)
@given(rows=st.lists(st.lists(cells, min_size=5, max_size=5), min_size=1, max_size=4))
def test_load_transcripts_keeps_every_cell_of_its_columns(
    suffix: str, sep: str, rows: list[list[str]]
) -> None:
    """Through ``load_transcripts``: ids, speakers, texts and group labels as written (a blank
    label is only dropped later, by the scorer, and counted)."""
    header = ["id", "speaker", "ref", "hyp", "accent"]
    rows = [[f"u{i}{row[0]}", *row[1:]] for i, row in enumerate(rows)]  # ids must be unique
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        _write(path, [header, *rows], sep, "\r\n")
        frame = load_transcripts(path, groupings=["accent"])
    assert not frame.attrs.get(IDS_FROM_LINES)
    assert frame[header].values.tolist() == rows


# A TSV written as is (Common Voice's way) where a cell starts with a quote that is text.
UNQUOTED_EXAMPLES = ['"Oui", dit-il.', '"', '""', '"a""b', 'x"y"', '"ab"c', '"ab""', '"ab"']
AMBIGUOUS = "ambiguous quoting"


@settings(max_examples=150)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(UNQUOTED_EXAMPLES),
                cells.map(lambda c: re.sub(r"[\t\r\n]", " ", c)),
            ),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=4,
    )
)
# A quotation split over two utterances: read with quoting, the two rows were one.
@example(rows=[['"Bonjour tout', "bonjour", "f"], ['le monde"', "le monde", "f"]])
def test_an_unquoted_tsv_reads_as_written_or_is_refused(rows: list[list[str]]) -> None:
    """Quotes in an unquoted TSV are text, and never merge or split its rows. A cell that
    starts with a quote is ambiguous: where every such cell is a well-formed quoted field
    (``"Oui"``), the file reads as a quoted TSV (so as ``Oui``), by design; where a quote
    would open a field on one line and close it on a later one, the file is refused."""
    header = ["ref", "hyp", "gender"]
    text = "\n".join("\t".join(row) for row in [header, *rows]) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.tsv"
        path.write_text(text, encoding="utf-8", newline="")
        try:
            frame = read_table(path)
        except AsrfairError as exc:
            assert AMBIGUOUS in str(exc)
            return
    quoted = [c for row in rows for c in row if c.startswith('"')]
    if quoted and all(re.fullmatch(r'"([^"]|"")*"', c) for c in quoted):
        assert len(frame) == len(rows)  # read as quoted: the rows stay, the quotes go
    else:
        assert frame.values.tolist() == rows


@pytest.mark.parametrize(
    "text",
    [
        'ref\thyp\n"Oui", dit-il\til a dit "oui"\n',  # quotes that are text: read as written
        'ref\thyp\n"a\nb"\tx\n',  # a quoted newline that cannot be read as written
    ],
)
def test_a_tsv_reads_quoted_only_where_unquoted_cannot_work(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.tsv"
    path.write_text(text, encoding="utf-8", newline="")
    expected = [['"Oui", dit-il', 'il a dit "oui"']] if "Oui" in text else [["a\nb", "x"]]
    assert read_table(path).values.tolist() == expected


def test_a_quotation_over_two_rows_of_a_tsv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text('id\tref\nu1\t"Bonjour tout\nu2\tle monde"\n', encoding="utf-8")
    with pytest.raises(AsrfairError, match=rf"{AMBIGUOUS}: .* one row, .* 2 rows; save"):
        read_table(path)


# -- 2. exporters -----------------------------------------------------------------------------

labels = cells.filter(lambda s: s.strip() != "")
# A grouping name is a column name: never "*" (that joins groupings into intersections) nor
# one of asrfair's own columns. In the CSV its scope shares a column with "overall" and
# "gap:NAME", so those two names are left out (they would be ambiguous there, by design).
groupings = cells.filter(
    lambda s: (
        bool(s.strip())
        and "*" not in s
        and s not in RESERVED
        and s != "overall"
        and not s.startswith("gap:")
    )
)
# Every group has no errors, so every label is also named in a note ("x has no errors"); a
# row with an empty label adds a "dropped" note and warning that name the grouping.
CONFIG = StatsConfig(n_boot=199, n_perm=0, interval="t")
METRICS = installed().chosen_metrics(DEFAULT_METRICS)


def _report(grouping: str, names: list[str]) -> Report:
    rows: list[dict[str, Any]] = [
        {"id": f"{g}-{s}-{u}", "speaker": f"g{g}s{s}", grouping: label, "ref": "a b", "hyp": "a b"}
        for g, label in enumerate(names)
        for s in range(3)
        for u in range(2)
    ]
    rows.append({"id": "blank", "speaker": "blank", grouping: " ", "ref": "a", "hyp": "b"})
    return run_metrics(score(pd.DataFrame(rows), identity, groupings=[grouping]), CONFIG, METRICS)


def _check_json(report: Report, grouping: str, names: list[str]) -> None:
    data = json.loads(to_json(report))
    assert [e["group"] for e in data["groups"][grouping]] == names
    for gap in data["gaps"][grouping]:
        assert {gap["a"], gap["b"]} <= set(names)


def _check_csv(report: Report, grouping: str, names: list[str]) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(report), newline="")))
    assert rows[0] == ["scope", "group", "field", "value", "ci_low", "ci_high"]
    assert all(len(row) == 6 for row in rows)
    # Cells a spreadsheet would run (= + - @ tab CR first) carry a leading apostrophe
    # (csv_cell). Undone, it gives the label back, unless the label itself starts with an
    # apostrophe and a formula character: "'=x" and "=x" export alike, as in a spreadsheet.
    fields = sum(1 for row in rows if row[:2] == ["overall", "all"])
    groups = Counter(row[1] for row in rows if row[0] == csv_cell(grouping))
    assert groups == Counter(csv_cell(name) for name in names for _ in range(fields))

    def undo(cell: str) -> str:
        return cell[1:] if cell.startswith("'") and csv_cell(cell[1:]) == cell else cell

    for name in names:
        if not name.startswith("'"):
            assert undo(csv_cell(name)) == name


def _cells_md(line: str) -> list[str]:
    """A Markdown table row split as GitHub does: a pipe after a backslash is text."""
    parts = re.split(r"(?<!\\)\|", line)
    assert parts[0] == "" and parts[-1] == "", line
    return [p[1:-1] if p.startswith(" ") and p.endswith(" ") else p for p in parts[1:-1]]


def _check_markdown(report: Report, grouping: str, names: list[str]) -> None:
    text = to_markdown(report)
    lines = text.split("\n")
    views = report_tables(report)
    # Every table is one block of lines starting with "|": header, delimiter, one per row; a
    # label in a note or heading cannot add a row, end one early or open a table.
    blocks: list[list[str]] = []
    for previous, line in zip(["", *lines], lines, strict=False):
        if line.startswith("|"):
            if not previous.startswith("|"):
                blocks.append([])
            blocks[-1].append(line)
    assert [len(b) for b in blocks] == [2 + len(v.rows) for v in views]
    for block in blocks:
        width = len(_cells_md(block[0]))
        assert all(len(_cells_md(line)) == width for line in block), block
        assert set(_cells_md(block[1])) <= {":---", "---:"}
    assert sum(line.startswith("## ") for line in lines) == len(views)
    assert "<" not in text and ">" not in text  # no raw HTML: labels' < > are entities
    by = blocks[[v.title for v in views].index(f"By {grouping}")]
    assert [_cells_md(line)[0] for line in by[2:]] == [markdown_escape(n) for n in names]


def _check_latex(report: Report, grouping: str, names: list[str]) -> None:
    text = to_latex(report)
    assert all(unicodedata.category(c) != "Cc" for c in text.replace("\n", ""))  # TeX refuses
    # Braces balance, never closing one that is not open; \{ and \} are printed braces.
    depth = 0
    for char in text.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    lines = text.split("\n")
    for line in lines:  # % starts a comment: only asrfair's own comment lines hold a bare one
        assert line.startswith("% ") or not re.search(r"(?<!\\)%", line), line
    views = report_tables(report)
    starts = [i for i, line in enumerate(lines) if line == "\\midrule"]
    assert len(starts) == len(views)
    for start, view in zip(starts, views, strict=True):
        body = lines[start + 1 : start + 1 + len(view.rows)]
        assert lines[start + 1 + len(view.rows)] == "\\bottomrule"
        ampersands = len(re.findall(r"(?<!\\)&", lines[start - 1]))
        for line in body:  # one line per row, with the header's number of cells
            assert line.endswith(" \\\\") and len(re.findall(r"(?<!\\)&", line)) == ampersands
        if view.title == f"By {grouping}":
            assert [re.split(r"(?<!\\)&", line)[0] for line in body] == [
                latex_escape(n) + " " for n in names
            ]
    captions = [line for line in lines if line.startswith("\\caption{")]
    assert len(captions) == len(views) and all(line.endswith("}") for line in captions)


def _check_rich(report: Report, grouping: str, names: list[str]) -> None:
    buffer = io.StringIO()
    Console(file=buffer, width=2000, color_system=None, legacy_windows=False).print(to_rich(report))
    text = buffer.getvalue()
    # Nothing reaches the terminal that it would act on: no escape sequence, no stray line.
    assert all(unicodedata.category(c) != "Cc" for c in text.replace("\n", ""))
    lines = text.split("\n")
    views = report_tables(report)
    tops = [i for i, line in enumerate(lines) if line.startswith("┏")]
    assert len(tops) == len(views)
    for top, view in zip(tops, views, strict=True):
        title = one_line(view.title)
        if cell_len(title) < cell_len(lines[top]):  # a longer title wraps, as rich does
            assert lines[top - 1].rstrip() == title.rstrip()
        n_rows = len(view.rows)
        table = lines[top : top + 4 + n_rows]  # top, header, rule, a line per row, bottom
        assert table[2].startswith("┡") and table[-1].startswith("└") and table[-1].endswith("┘")
        assert len({cell_len(line) for line in table}) == 1, table  # every row one line
        if view.title == f"By {grouping}":
            first = table[0].index("┳")  # box characters are one cell wide
            for line, name in zip(table[3:-1], names, strict=True):
                cell = "│ " + one_line(name)
                pad = first - cell_len(cell)  # the spaces up to the column's right edge
                assert line.startswith(cell + " " * pad + "│"), (line, cell)


@settings(max_examples=150, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    grouping=groupings,
    names=st.lists(labels, min_size=2, max_size=3, unique_by=str.strip),
)
# Markdown notes were not escaped: a label with a newline added a fake table row, and <b> was
# raw HTML. LaTeX kept line breaks, so a blank line ended \caption early. rich split a row at
# a newline, a tab or U+2028, passed escape sequences to the terminal, and a grouping named
# "[/oops]" raised a MarkupError from the table title.
@example(grouping="g", names=["a\n| fake | row |", "x<b>|"])
@example(grouping="g", names=["a\n\nb", "c\td"])
@example(grouping="[/oops]", names=["\x1b[2Jx", "y\u2028z"])
# Formula starts get the apostrophe, a negative number does not; "'=x" keeps its own.
@example(grouping="=cmd", names=["=HYPERLINK(1)", "-1", "'=x"])
# The CSV writer, ending lines with "\n", left a lone "\r" unquoted: the row split in two.
@example(grouping=",", names=[",", "0\r="])
def test_any_group_label_survives_every_export(grouping: str, names: list[str]) -> None:
    report = _report(grouping, names)
    # asrfair strips labels, and lists groups in its own order: the checks take that order.
    shown = [str(e["group"]) for e in report.data["groups"][grouping]]
    assert sorted(shown) == sorted(n.strip() for n in names)
    _check_json(report, grouping, shown)
    _check_csv(report, grouping, shown)
    _check_markdown(report, grouping, shown)
    _check_latex(report, grouping, shown)
    _check_rich(report, grouping, shown)


@requires_tool("pdflatex", "Debian: apt-get install texlive-latex-recommended")
def test_the_latex_export_of_hostile_labels_compiles(tmp_path: Path) -> None:
    """The structural checks above, confirmed by TeX itself where it is installed."""
    names = ["a\n\nb", "\\textbf{x", "~^\\ $&_#%", "\x1b[2J\x00\x7f", "}{", "<b>|\t"]
    body = to_latex(_report("g#%[/oops]", names))
    (tmp_path / "r.tex").write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "r.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith("!")]
    assert result.returncode == 0, errors
