"""Built-in report writers: terminal (rich), JSON, CSV, Markdown, LaTeX (booktabs) and a
self-contained HTML page (asrfair.html_report)."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from asrfair import __version__, hookimpl
from asrfair.html_report import to_html
from asrfair.registry import Register
from asrfair.report import (
    Exporter,
    Report,
    gap_label,
    headline,
    method_sentence,
    report_tables,
    report_title,
    table_cells,
)


def _texts(
    rows: list[list[tuple[str, bool]]], escape: Callable[[str], str], strong: str
) -> list[list[str]]:
    """Escaped cell texts; ``strong`` is a format string such as ``**{}**`` for the best cells."""
    return [[strong.format(escape(t)) if bold else escape(t) for t, bold in row] for row in rows]


def one_line(text: str) -> str:
    r"""Line breaks (``\n``, ``\r``, ``\x85``, ``\u2028``...) and tabs as spaces, and other
    control characters (escape, NUL, DEL...) as ``\x1b``-style text."""
    text = " ".join(text.splitlines()).replace("\t", " ")
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)


def _rich_text(text: str, style: str = "") -> Text:
    """Text, not markup, so that a title "By [/x]" or a cell "[1]" stays literal (and cannot
    raise), on one line: rich splits a table row at a line break or a tab, and passes escape
    sequences through to the terminal, which can recolour or clear it."""
    return Text(one_line(text), style=style)


def to_rich(report: Report) -> RenderableType:
    parts: list[RenderableType] = [_rich_text(report_title(report), style="bold")]
    parts.extend(_rich_text(line, style="bold red") for line in headline(report))
    for view in report_tables(report):
        header, rows = table_cells(view)
        title = _rich_text(view.title, style="table.title")
        table = Table(title=title, title_justify="left", header_style="bold")
        for i, name in enumerate(header):
            table.add_column(
                _rich_text(name), justify="left" if i == 0 or name == "value" else "right"
            )
        for row in rows:
            table.add_row(*(_rich_text(text, style="bold" if bold else "") for text, bold in row))
        parts.append(table)
        parts.extend(_rich_text(note, style="yellow") for note in view.notes)
    parts.extend(_rich_text(f"warning: {w}", style="yellow") for w in report.warnings)
    parts.append(Text(method_sentence(report.method), style="dim"))
    return Group(*parts)


def to_json(report: Report) -> str:
    return json.dumps(report.data, indent=2, ensure_ascii=False) + "\n"


def to_markdown(report: Report) -> str:
    out = [f"# {markdown_escape(report_title(report))}", ""]
    out += [line for text in headline(report) for line in (f"> **{markdown_escape(text)}**", "")]
    for view in report_tables(report):
        header, cells = table_cells(view)
        rows = _texts(cells, markdown_escape, "**{}**")
        out += [
            f"## {markdown_escape(view.title)}",
            "",
            "| " + " | ".join(map(markdown_escape, header)) + " |",
        ]
        left = [i == 0 or h == "value" for i, h in enumerate(header)]
        out.append("|" + "|".join(":---" if flag else "---:" for flag in left) + "|")
        out += ["| " + " | ".join(row) + " |" for row in rows]
        # Notes name groups ("x has no errors"), so they are escaped like the cells.
        out += ["", *[f"{markdown_escape(note)}  " for note in view.notes]]
        if view.notes:
            out.append("")
    out += [*(f"- warning: {markdown_escape(w)}" for w in report.warnings)]
    if report.warnings:
        out.append("")
    out += [f"*{method_sentence(report.method)}*", ""]
    return "\n".join(out)


_MARKDOWN_SPECIAL = re.compile(r"([\\|*_$`~])")


def markdown_escape(text: str) -> str:
    """A cell as literal text: a newline would end the table row, ``*``/``_``/``$`` would turn
    labels into emphasis or maths, and ``<``/``>`` into HTML."""
    text = " ".join(text.splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # "](" is what makes "[text](url)" and "![alt](url)" a link or an image; intervals such
    # as "[11.0, 13.7]" stay as they are.
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("](", "\\](")


_LATEX_SPECIAL = re.compile(r"([&%$#_{}])")


_LATEX_WORDS = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    r"""Text as LaTeX that prints it literally. One pass over the characters: escaping the
    braces of ``\textbackslash{}`` again, as a second pass would, prints them. On one line
    (``one_line``), as in Markdown: a blank line ends a paragraph, which is an error inside
    ``\caption`` (whose notes name groups) and ``\textbf``, and TeX refuses control
    characters."""
    escaped = "".join(
        _LATEX_WORDS.get(char) or (f"\\{char}" if _LATEX_SPECIAL.fullmatch(char) else char)
        for char in one_line(text)
    )
    # A cell that opens a row with "[" would be read as the optional argument of the previous
    # row's "\\\\" ("Missing number"); braced, it is a bracket again.
    return "{[}" + escaped[1:] if escaped.startswith("[") else escaped


def _label(title: str) -> str:
    return "tab:asrfair-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def to_latex(report: Report) -> str:
    """One booktabs table per view, ready for ``\\input``; each caption states the method."""
    method = latex_escape(method_sentence(report.method))
    # A table may be \input alone, so each caption opens with the headline too.
    first = "".join(f"{latex_escape(text)} " for text in headline(report))
    out = [f"% {latex_escape(report_title(report))} (asrfair {__version__})"]
    out += [f"% {latex_escape(text)}" for text in headline(report)]
    out.append("% needs \\usepackage{booktabs}")
    for view in report_tables(report):
        header, cells = table_cells(view)
        rows = _texts(cells, latex_escape, "\\textbf{{{}}}")
        header = [latex_escape(h) for h in header]
        align = "".join("l" if i == 0 or h == "value" else "r" for i, h in enumerate(header))
        notes = " ".join(latex_escape(n) for n in view.notes)
        caption = f"{latex_escape(view.title)}. {first}{notes + ' ' if notes else ''}{method}"
        out += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{caption}}}",
            f"\\label{{{_label(view.title)}}}",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(header) + " \\\\",
            "\\midrule",
            *(" & ".join(row) + " \\\\" for row in rows),
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    return "\n".join(out)


def _flat_rows(report: Report) -> list[dict[str, Any]]:
    """Long format for machines: one value (with its interval) per row, fractions not %."""
    rows: list[dict[str, Any]] = []

    def add(scope: str, group: str, field: str, value: Any, ci: Any = None) -> None:
        lo, hi = ci if ci else (None, None)
        rows.append(
            {
                "scope": scope,
                "group": group,
                "field": field,
                "value": value,
                "ci_low": lo,
                "ci_high": hi,
            }
        )

    def add_entry(scope: str, group: str, entry: dict[str, Any]) -> None:
        for key, value in entry.items():
            if key in ("group", "warnings") or key.endswith("_ci"):
                continue
            if isinstance(value, dict):  # a compare entry: wer -> {rate_a, rate_b, ...}
                for sub, sub_value in value.items():
                    if not sub.endswith("_ci"):
                        add(scope, group, f"{key}.{sub}", sub_value, value.get(f"{sub}_ci"))
            else:
                add(scope, group, key, value, entry.get(f"{key}_ci"))

    data = report.data
    if report.kind == "inspect":
        for scope, rows_ in [("splits", data["splits"]), *data["groups"].items()]:
            for row in rows_:
                for key in ("n_utterances", "n_speakers", "hours"):
                    add(scope, row.get("group", "all"), f"{row['split']}.{key}", row[key])
        return rows

    def add_result(prefix: str, result: dict[str, Any]) -> None:
        add_entry(f"{prefix}overall", "all", result["overall"])
        for grouping, entries in result["groups"].items():
            for entry in entries:
                add_entry(f"{prefix}{grouping}", str(entry["group"]), entry)
        for grouping, gaps in result.get("gaps", {}).items():
            for g in gaps:
                label = gap_label(g)
                for key in (
                    "diff",
                    "ratio",
                    "p_value",
                    "p_permutation",
                    "p_interval",
                    "p_adjusted",
                    "p_min",
                ):
                    ci = g.get(f"{key}_ci")
                    value = g.get(key)
                    add(f"{prefix}gap:{grouping}", label, f"{g['metric']}.{key}", value, ci)

    def add_tables(prefix: str, tables: list[dict[str, Any]]) -> None:
        """A metric's table: one row per cell, scoped by the table's title; the first column
        names the row."""
        for table in tables:
            scope = f"{prefix}table:{table['title']}"
            for row in table["rows"]:
                for column, cell in zip(table["columns"][1:], row[1:], strict=True):
                    if isinstance(cell, dict):
                        add(scope, str(row[0]), column, cell["value"], cell["ci"])
                    else:
                        add(scope, str(row[0]), column, cell)

    if report.kind == "study":  # each run, then each comparison, scoped by name
        for run in data["runs"]:
            add_result(f"{run['name']}:", run)
            add_tables(f"{run['name']}:", run.get("tables", []))
        for cmp in data["comparisons"]:
            add_result(f"{cmp['b']} - {cmp['a']}:", cmp)
        return rows
    add_result("", data)
    add_tables("", data.get("tables", []))
    return rows


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (``=HYPERLINK(...)`` as a group
    name) gets a leading apostrophe, the usual neutraliser; numbers are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def _csv_line(values: list[Any]) -> str:
    r"""One CSV record ended by "\n". The writer quotes a field only for the characters of its
    own line terminator, so with "\n" a label holding a lone "\r" went out bare and split its
    row: each record is written with "\r\n", which quotes both, and ended with "\n"."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()[: -len("\r\n")] + "\n"


def to_csv(report: Report) -> str:
    fields = ["scope", "group", "field", "value", "ci_low", "ci_high"]
    rows = [[csv_cell(row[k]) for k in fields] for row in _flat_rows(report)]
    return "".join(_csv_line(values) for values in [fields, *rows])


@hookimpl
def register_exporters(register: Register[Exporter]) -> None:
    register("rich", to_rich, help="tables in the terminal")
    register("json", to_json, help="the report data (docs/json-schema.md)")
    register("csv", to_csv, help="long format: scope, group, field, value, ci_low, ci_high")
    register("md", to_markdown, help="Markdown tables with the method under them")
    register("latex", to_latex, help="booktabs tables whose captions state the method")
    register("html", to_html, help="one self-contained page: summary, plot, tables, method")
