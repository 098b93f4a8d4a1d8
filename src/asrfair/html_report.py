"""The report as one self-contained HTML page (the ``html`` exporter, ``report.html``).

A reader who opens no terminal gets one file to attach to an email: the headline gap first,
then the plot, the tables, the method, the warnings and the configuration. The page makes no
network request: the figures are inline SVG from asrfair.plots (the same code as the PNGs),
the CSS is inline, and the one inline script only sorts tables, so the page reads whole
without it. The tables come from ``report_tables`` and ``table_cells``, as every other
exporter's do, so their numbers are the Markdown's and the JSON's by construction. Every
string from the data (group labels, paths, column names) reaches the page through Jinja2's
autoescaping, so a label is shown as text and never runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from asrfair import __version__
from asrfair.plots import gap_forest_svg, groups_svg
from asrfair.report import (
    Report,
    TableView,
    format_cell,
    headline,
    interval_phrase,
    largest_wer_gap,
    method_sentence,
    ratio_text,
    report_tables,
    report_title,
    small_group,
    small_label,
    table_cells,
)
from asrfair.report_model import (
    CompareBody,
    Gap,
    Json,
    PairedEntry,
    RateCell,
    RateEntry,
    ScoreBody,
    StudyBody,
)


@dataclass(frozen=True)
class Fact:
    """One line of the summary; ``alert`` lines are drawn as warnings (icon and colour)."""

    label: str
    text: str
    alert: bool = False


@dataclass(frozen=True)
class Figure:
    caption: str
    svg: Markup  # matplotlib's SVG: it escapes the labels it draws


@dataclass(frozen=True)
class HtmlTable:
    title: str
    header: list[str]
    rows: list[list[tuple[str, bool]]]
    left: list[bool]  # text columns, aligned left; numbers align right
    notes: list[str]


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("asrfair", "templates"),
        autoescape=True,  # every {{ value }} is escaped: the page's one defence against labels
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# Bidirectional embedding, override and isolate controls, and the direction marks: one in a
# label (U+202E, say) would reverse the numbers that follow it on the page.
_BIDI_CONTROLS = re.compile(
    r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]|&#(?:x20(?:0[ef]|2[a-e]|6[6-9])|82(?:06|07|3[4-8]|9[4-7]));",
    re.I,
)


def _show_bidi_controls(page: str) -> str:
    """Every bidi control as visible text (``[U+202E]``), in the tables and in the SVG alike:
    a label is shown as written, and it cannot reorder the text around it."""

    def name(match: re.Match[str]) -> str:
        text = match.group()
        if len(text) == 1:
            return f"[U+{ord(text):04X}]"
        digits = text[2:-1]  # a character reference, &#x202e; or &#8238;
        code = int(digits[1:], 16) if digits[0] in "xX" else int(digits)
        return f"[U+{code:04X}]"

    return _BIDI_CONTROLS.sub(name, page)


def to_html(report: Report) -> str:
    """The whole page as one string."""
    return _show_bidi_controls(
        _environment()
        .get_template("report.html.j2")
        .render(
            title=report_title(report),
            headline=headline(report),
            summary=summary(report),
            figures=figures(report),
            tables=[_html_table(view) for view in report_tables(report)],
            method=method_sentence(report.method),
            method_fields=_method_fields(report.method),
            warnings=report.warnings,
            versions=_versions(report),
            config=json.dumps(_configuration(report), indent=2, ensure_ascii=False),
            version=__version__,
        )
    )


_NUMBER = re.compile(r"[-+]?[\d.]|n/a$|$")  # a number, possibly with its interval, or blank


def _html_table(view: TableView) -> HtmlTable:
    """A column of numbers aligns right; a column with any text (labels, run names) left."""
    header, rows = table_cells(view)
    left = [i == 0 or not all(_NUMBER.match(row[i][0]) for row in rows) for i in range(len(header))]
    return HtmlTable(view.title, header, rows, left, view.notes)


def figures(report: Report) -> list[Figure]:
    """The per-group plot of a run or scored file, the gap forest of a study."""
    data = report.data
    if report.kind in ("score", "audit"):
        svg = groups_svg(data)
        caption = (
            f"Rates per group with {interval_phrase(report.method)}. The dashed line is the "
            "overall rate."
        )
        entries = [e for es in data["groups"].values() for e in es]
        if any(small_group(e, report.method) for e in entries):
            caption += (
                " Open squares: groups with too few speakers, whose intervals are unreliable."
            )
    elif report.kind == "study":
        svg = gap_forest_svg(data)
        caption = (
            "Each run's largest WER gap between groups, in points, with its interval; the "
            "dashed line is no gap."
        )
    else:
        svg = None
    return [] if svg is None else [Figure(caption, Markup(svg))]


def summary(report: Report) -> list[Fact]:
    """What a reader needs first: the overall rate, the largest gap with its interval and
    p-value, and the groups too small to trust."""
    body, data, method = report.body, report.data, report.method
    if isinstance(body, ScoreBody):
        gap = _gap_fact(body.gaps, method)
        return [_overall_fact(body.overall), gap, _small_fact(data["groups"], method)]
    if isinstance(body, CompareBody):
        return [*_compare_facts(body), _small_fact(data["groups"], method)]
    if isinstance(body, StudyBody):
        return _study_facts(data, body, method)
    return []


def with_unit(cell: RateCell, unit: str) -> str:
    """``51.6% [44.2, 63.2]``: the unit on the value, where the tables' ``51.6 [44.2, 63.2]``
    leave it to the column's name."""
    value, _, interval = cell.percent().partition(" ")
    return f"{value}{unit} {interval}".rstrip() if cell.value is not None else value


def _overall_fact(overall: RateEntry) -> Fact:
    speakers = "" if overall.n_speakers is None else f" from {overall.n_speakers:,} speakers"
    rates = ", ".join(
        f"{name.upper()} {with_unit(cell, '%')}"
        for name, cell in overall.rates.items()
        if name in ("wer", "cer")
    )
    text = f"{rates or 'no rates'} over {overall.n_utterances:,} utterances{speakers}"
    return Fact("Overall", text)


def _largest(gaps_by_grouping: dict[str, list[Gap]]) -> tuple[str, Gap] | None:
    """The largest WER gap of any grouping, with its grouping."""
    found = [
        (grouping, gap)
        for grouping, gaps in gaps_by_grouping.items()
        if (gap := largest_wer_gap(gaps)) is not None
    ]
    return max(found, key=lambda item: abs(item[1].diff.value or 0.0), default=None)


def _gap_text(grouping: str, gap: Gap, method: Json) -> str:
    text = f"by {grouping}, {gap.a} − {gap.b} = {with_unit(gap.diff, ' points')}"
    text += f" (ratio {ratio_text(gap.ratio)})"
    if gap.p_value is not None:
        text += f"; p = {format_cell(gap.p_value)}"
    if gap.adjusted is not None:
        family = method.get("p_adjust_family") or "adjusted"
        text += f", adjusted p = {format_cell(gap.adjusted)} ({family})"
    return text


def _gap_fact(gaps: dict[str, list[Gap]], method: Json) -> Fact:
    largest = _largest(gaps)
    if largest is None:
        return Fact("Largest WER gap", "none computed (no --groups, or no gap metric)")
    return Fact("Largest WER gap", _gap_text(*largest, method))


def _small_fact(groups: dict[str, list[Json]], method: Json) -> Fact:
    """The groups flagged in the tables as having too few speakers, or that none is."""
    small = [
        f"{grouping}={entry['group']} ({entry.get('n_speakers')} speakers)"
        for grouping, entries in groups.items()
        for entry in entries
        if small_group(entry, method)
    ]
    fewer = small_label(method)
    if small:
        return Fact(
            f"Groups with {fewer}",
            "; ".join(small) + ": their intervals are unreliable",
            alert=True,
        )
    return Fact(f"Groups with {fewer}", "none")


def _paired_text(paired: PairedEntry) -> str:
    text = with_unit(paired.diff, " points")
    if paired.p_b_better is not None:
        text += f", P(B better) = {format_cell(paired.p_b_better)}"
    return text


def _compare_facts(body: CompareBody) -> list[Fact]:
    systems = body.systems
    facts = [Fact("Systems", f"A = {systems.get('a')}; B = {systems.get('b')}")]
    wer = body.overall.paired("wer")
    if wer is not None:
        facts.append(Fact("WER, B − A", _paired_text(wer)))
    per_group = [
        (f"{grouping}={entry.group}", paired)
        for grouping, entries in body.groups.items()
        for entry in entries
        if (paired := entry.paired("wer")) is not None and paired.diff.value is not None
    ]
    if per_group:
        label, paired = max(per_group, key=lambda item: abs(item[1].diff.value or 0.0))
        facts.append(
            Fact("Largest per-group WER change, B − A", f"{label}: {_paired_text(paired)}")
        )
    return facts


def _study_facts(data: Json, body: StudyBody, method: Json) -> list[Fact]:
    facts = [Fact("Runs", f"{len(body.runs)} runs, {len(body.comparisons)} paired comparisons")]
    largest = [(run.name, found) for run in body.runs if (found := _largest(run.gaps)) is not None]
    if largest:
        name, (grouping, gap) = max(largest, key=lambda item: abs(item[1][1].diff.value or 0.0))
        facts.append(
            Fact("Largest WER gap of any run", f"{name}: {_gap_text(grouping, gap, method)}")
        )
    groups = {
        f"{run['name']}: {grouping}": entries
        for run in data["runs"]
        for grouping, entries in run["groups"].items()
    }
    return [*facts, _small_fact(groups, method)]


def _method_fields(method: Json) -> list[tuple[str, str]]:
    """Every field of the method, for readers who want the details behind the sentence."""
    return [
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in method.items()
    ]


def _versions(report: Report) -> list[tuple[str, str]]:
    run = getattr(report.body, "run", None) or {}
    versions = dict(run.get("versions", {}))
    stored = report.body.config.get("asrfair_version")
    if stored and "asrfair" not in versions:
        versions["asrfair"] = stored
    return [*versions.items(), ("asrfair (this page)", __version__)]


def _configuration(report: Report) -> Json:
    """The options the numbers came from: the report's config, and an audit's training."""
    config: Json = dict(report.body.config)
    run = getattr(report.body, "run", None)
    if run:
        config["run"] = {k: v for k, v in run.items() if k not in ("subset_size", "versions")}
    return config
