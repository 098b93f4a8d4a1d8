"""The Report that every exporter renders, and the shared table layouts.

A Report is what ``metrics.json`` holds, as the typed body of asrfair.report_model.
``report_tables`` lays it out once as titled tables of cells, with the layout its kind
registered (``@layout``), so the terminal, Markdown and LaTeX tables of one run always
agree with each other and with the JSON.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from asrfair.errors import AsrfairError
from asrfair.report_model import (
    CompareBody,
    Gap,
    InspectBody,
    Json,
    Method,
    PairedEntry,
    RateCell,
    RateEntry,
    Record,
    ReportBody,
    ScoreBody,
    StudyBody,
    StudyRun,
    body_from_json,
    gap_text,
)
from asrfair.stats import AUTO_MIN_SPEAKERS


@dataclass(init=False)
class Report:
    """One report of any of five kinds, as a typed ``body`` (asrfair.report_model):

    - ``score``: ``asrfair score``, and each run's numbers (``ScoreBody``);
    - ``audit``: the same with ``run``, what was trained on what (``ScoreBody``);
    - ``compare``: two systems on the same utterances (``CompareBody``);
    - ``inspect``: a dataset's sizes, ``asrfair data inspect`` (``InspectBody``);
    - ``study``: every run of a study and their comparisons (``StudyBody``).

    ``Report(kind, data)`` also takes the JSON document (docs/json-schema.md) and reads it.
    """

    kind: str
    body: ReportBody
    bold_best: bool = False  # a rendering choice, not data: never stored in metrics.json

    def __init__(self, kind: str, data: Json | ReportBody, bold_best: bool = False) -> None:
        self.kind = kind
        self.body = data if isinstance(data, Record) else body_from_json(kind, data)
        self.bold_best = bold_best

    @property
    def data(self) -> Json:
        """The JSON document (``body.to_json()``), what exporters and plugins read. Built
        afresh on each access: change a report through ``body``, not through this."""
        return copy.deepcopy(self.body.to_json())

    @property
    def method(self) -> Json:
        return self.body.method.to_json()

    @property
    def warnings(self) -> list[str]:
        return list(self.body.warnings)


# An exporter plugin: text for a file or stdout, or a rich renderable for the terminal.
Exporter = Callable[[Report], str | RenderableType]


Cell = str | int | float | None | RateCell


@dataclass
class TableView:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells to emphasise

    def mark_best(self, columns: list[int]) -> None:
        """Emphasise the lowest rate of each given column (papers bold the best system)."""
        for col in columns:
            values = [
                (cell.value, i)
                for i, row in enumerate(self.rows)
                if isinstance((cell := row[col]), RateCell) and cell.value is not None
            ]
            if values:
                best = min(v for v, _ in values)
                self.bold |= {(i, col) for v, i in values if v == best}


def _visible_columns(table: TableView) -> list[int]:
    """Drop columns that are empty in every row (e.g. notes when there are none)."""
    return [
        i
        for i in range(len(table.columns))
        if any(format_cell(row[i]) for row in table.rows) or i == 0
    ]


def table_cells(table: TableView) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and (text, emphasised) cells of the visible columns: what every text exporter
    prints, so their numbers agree cell for cell."""
    keep = _visible_columns(table)
    header = [table.columns[i] for i in keep]
    rows = [
        [(format_cell(row[i]), (r, i) in table.bold) for i in keep]
        for r, row in enumerate(table.rows)
    ]
    return header, rows


def format_cell(cell: Cell) -> str:
    if isinstance(cell, RateCell):
        return cell.percent()
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.3g}" if abs(cell) < 1e-3 and cell != 0 else f"{cell:.3f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return str(cell)


SPEAKERS_UNKNOWN = (
    "Speakers unknown: the data has no speaker column, so every utterance counts as its own "
    "speaker. Intervals and gap tests then treat utterances as independent and are too narrow "
    "if speakers recur; name the speaker column (--columns speaker=COLUMN for a dataset, "
    "--speaker-col for transcripts)."
)


def speakers_method(unknown: bool) -> dict[str, str]:
    """The ``method`` field that flags a report whose speakers are unknown (absent otherwise,
    so reports with speakers keep the JSON they always had)."""
    return {"speakers": "unknown"} if unknown else {}


_SMALL_WARNING = re.compile(r"only \d+ speaker\(s\)")


def small_group(entry: Mapping[str, Any], method: Mapping[str, Any]) -> bool:
    """Whether a group (its JSON entry) has fewer speakers than ``--min-speakers``, the groups
    every table flags; a file without the threshold is read by the warning it carries."""
    threshold, speakers = method.get("min_speakers"), entry.get("n_speakers")
    if isinstance(threshold, int) and isinstance(speakers, int):
        return speakers < threshold
    return any(_SMALL_WARNING.search(w) for w in entry.get("warnings", []))


def small_label(method: Mapping[str, Any]) -> str:
    """What makes a group small, as a legend or heading says it."""
    threshold = method.get("min_speakers")
    return f"fewer than {threshold} speakers" if threshold else "too few speakers"


def headline(report: Report) -> list[str]:
    """What every exporter prints first, under the title: facts that change how every number
    below reads, which a warning line at the end would leave to be missed."""
    return [SPEAKERS_UNKNOWN] if report.body.method.speakers == "unknown" else []


def _typed_method(method: Method | Mapping[str, Any]) -> Method:
    """Plots and the API hold the method as JSON; the sentences below read the typed one."""
    return method if isinstance(method, Method) else Method.from_json(dict(method))


def interval_phrase(method: Method | Mapping[str, Any]) -> str:
    """How the intervals were made, e.g. "95% linearised t intervals over speakers"."""
    m = _typed_method(method)
    confidence = round(100 * float(0.95 if m.confidence is None else m.confidence))
    unit = m.resampling_unit or "?"
    interval = m.interval or "percentile"
    draws = m.draws or 0
    if interval == "none" or (interval != "t" and not draws):
        return "no intervals (--bootstrap 0)"
    if interval == "t":
        return f"{confidence}% linearised t intervals over {unit}s (k-1 df; Welch for gaps)"
    if interval == "auto":
        return (
            f"{confidence}% bootstrap-t intervals from {draws:,} draws resampling {unit}s within "
            f"each group, seed {m.seed} (linearised t intervals for groups of fewer "
            f"than {AUTO_MIN_SPEAKERS} speakers)"
        )
    return (
        f"{confidence}% {interval} intervals from {draws:,} bootstrap draws resampling "
        f"{unit}s within each group, seed {m.seed}"
    )


def method_sentence(method: Method | Mapping[str, Any]) -> str:
    """The sentence printed under every table: how each number was computed."""
    m = _typed_method(method)
    if not m.to_json():
        return ""
    if m.draws is None and m.split is not None:
        return f"Split: {m.split}. Hours from clip durations."
    phrase = interval_phrase(m)
    text = "Rates in % are corpus-level (sum of errors / sum of reference tokens). "
    text += phrase[0].upper() + phrase[1:] + "."
    if m.permutations is not None:
        unit = m.resampling_unit or "?"
        if not m.permutations:
            text += " No gap p-values (--permutations 0)."
        else:
            family = m.p_adjust_family or "Holm within each grouping"
            test = (
                f"studentised permutation test over {unit}s ({m.permutations:,} "
                "relabelings, exact when there are fewer)"
            )
            if phrase.startswith("no intervals"):
                text += f" Gap p-values: a {test}; adjustment: {family}."
            else:
                text += (
                    f" Gap p-values: the larger of a {test} and the test of the gap's own "
                    f"interval; adjustment: {family}."
                )
    return text


def _footnote_marks(warnings: list[str], notes: list[str]) -> str:
    """Short marks like ``[1,2]`` for a row; the full texts become the table's notes."""
    marks = []
    for warning in warnings:
        if warning not in notes:
            notes.append(warning)
        marks.append(str(notes.index(warning) + 1))
    return f"[{','.join(marks)}]" if marks else ""


def _numbered(notes: list[str]) -> list[str]:
    return [f"[{i}] {note}" for i, note in enumerate(notes, start=1)]


def _entry_row(label: str, entry: RateEntry, rates: list[str], notes: list[str]) -> list[Cell]:
    errors, words = entry.values.get("errors"), entry.values.get("n_ref_words")
    return [
        label,
        *[entry.rate(r) for r in rates],
        "" if errors is None or words is None else f"{errors:,}/{words:,}",
        entry.n_utterances,
        entry.n_speakers,
        _footnote_marks(entry.warnings, notes),
    ]


# A report kind's layout: its typed body as titled tables. Each kind registers its own.
Layout = Callable[[Any], list[TableView]]
LAYOUTS: dict[str, Layout] = {}


def layout(*kinds: str) -> Callable[[Layout], Layout]:
    """Register a function as the table layout of the given report kinds."""

    def register(function: Layout) -> Layout:
        LAYOUTS.update(dict.fromkeys(kinds, function))
        return function

    return register


@layout("score")
def score_tables(body: ScoreBody) -> list[TableView]:
    """Overall, then one table per grouping, then its gaps; a rate column per declared rate."""
    rates = list(body.overall.rates)
    for entries in body.groups.values():
        rates += [r for e in entries for r in e.rates if r not in rates]
    header = ["group", *[r.upper() for r in rates], "errors/words", "utts", "speakers", "note"]
    notes: list[str] = []
    tables = [TableView("Overall", header, [_entry_row("all", body.overall, rates, notes)])]
    tables[0].notes = _numbered(notes)
    for grouping, entries in body.groups.items():
        notes = []
        rows = [_entry_row(e.group, e, rates, notes) for e in entries]
        dropped = [body.dropped[grouping]["message"]] if grouping in body.dropped else []
        tables.append(TableView(f"By {grouping}", header, rows, _numbered(notes) + dropped))
    for grouping, gaps in body.gaps.items():
        if gaps:
            tables.append(_gap_table(grouping, gaps, body.gap_notes.get(grouping, [])))
    return tables + metric_tables(body.tables)


def metric_tables(tables: list[Json] | None, prefix: str = "") -> list[TableView]:
    """The tables metrics added (``MetricContext.add_table``), laid out like the others, so
    every exporter shows a plugin's results without knowing the plugin."""
    return [
        TableView(
            prefix + str(t["title"]),
            [str(c) for c in t["columns"]],
            [[_table_cell(c) for c in row] for row in t["rows"]],
            [str(n) for n in t.get("notes", [])],
        )
        for t in tables or []
    ]


def _table_cell(cell: Any) -> Cell:
    """A metric table's JSON cell; an interval cell reads ``value [low, high]``."""
    if not isinstance(cell, dict):
        return cell if isinstance(cell, str | int | float) or cell is None else str(cell)
    text = format_cell(cell.get("value"))
    ci = cell.get("ci")
    if ci:
        low = "(-inf" if ci[0] is None else f"[{format_cell(ci[0])}"
        high = "inf)" if ci[1] is None else f"{format_cell(ci[1])}]"
        text += f" {low}, {high}"
    return text


GAP_ROWS_SHOWN = 20  # a table lists at most this many gaps; JSON and CSV keep them all


def gap_label(g: Mapping[str, Any]) -> str:
    """A gap's name from its JSON (the CSV exporter reads JSON); ``Gap.label`` is the same."""
    return gap_text(g.get("kind"), g["a"], g["b"])


def _gap_table(grouping: str, gaps: list[Gap], extra: list[str]) -> TableView:
    """One row per gap; past GAP_ROWS_SHOWN rows the largest gap and smallest p come first."""
    shown = gaps
    if len(gaps) > GAP_ROWS_SHOWN:
        shown = sorted(
            gaps,
            key=lambda g: (g.kind != "largest", 2.0 if g.p_value is None else g.p_value),
        )[:GAP_ROWS_SHOWN]
    notes: list[str] = []
    rows: list[list[Cell]] = [
        [
            g.label,
            g.metric.upper(),
            g.diff,
            ratio_text(g.ratio),
            g.p_value,
            g.adjusted,
            _footnote_marks(g.warnings, notes),
        ]
        for g in shown
    ]
    notes = _numbered(notes) + list(extra)
    if len(shown) < len(gaps):
        notes.append(
            f"showing {len(shown)} of {len(gaps):,} gaps (largest gap first, then smallest p); "
            "--format json or csv lists all"
        )
    columns = ["groups", "metric", "diff (pts)", "ratio", "p", "p (adj.)", "note"]
    return TableView(f"Gaps by {grouping}", columns, rows, notes)


def ratio_text(ratio: RateCell) -> str:
    if ratio.value is None:
        return "n/a"
    text = f"{ratio.value:.2f}"
    if ratio.ci:
        upper = "inf)" if ratio.ci[1] is None else f"{ratio.ci[1]:.2f}]"
        text += f" [{ratio.ci[0]:.2f}, {upper}"  # a ratio's lower end is never below 0
    return text


def _compare_row(
    label: str, metric: str, cmp: PairedEntry, entry: RateEntry, notes: list[str]
) -> list[Cell]:
    return [
        label,
        metric.upper(),
        RateCell(cmp.rate_a),
        RateCell(cmp.rate_b),
        cmp.diff,
        cmp.p_b_better,
        cmp.p_a_better,
        cmp.p_tie,
        entry.n_speakers,
        _footnote_marks(entry.warnings, notes),
    ]


@layout("compare")
def compare_tables(body: CompareBody) -> list[TableView]:
    """B against A, overall and per group, one row per metric."""
    header = ["group", "metric", "A", "B", "B - A (pts)", "P(B better)", "P(A better)", "P(tie)"]
    header += ["speakers", "note"]
    scopes: list[tuple[str, list[tuple[str, RateEntry]]]] = [("Overall", [("all", body.overall)])]
    scopes += [(f"By {g}", [(e.group, e) for e in es]) for g, es in body.groups.items()]
    tables = []
    for title, entries in scopes:
        notes: list[str] = []
        rows = [
            _compare_row(label, metric, paired, entry, notes)
            for label, entry in entries
            for metric in ("wer", "cer")
            if (paired := entry.paired(metric)) is not None
        ]
        tables.append(TableView(title, header, rows, _numbered(notes)))
    tables[0].notes.append(f"A = {body.systems.get('a')}; B = {body.systems.get('b')}")
    return tables


def _inspect_values(row: dict[str, Any]) -> list[Cell]:
    return [row["n_utterances"], row["n_speakers"], f"{row['hours']:.2f}"]


@layout("inspect")
def inspect_tables(body: InspectBody) -> list[TableView]:
    """Sizes per split, then per group and split."""
    columns = ["utterances", "speakers", "hours"]
    splits: list[list[Cell]] = [[r["split"], *_inspect_values(r)] for r in body.splits]
    tables = [TableView("Splits", ["split", *columns], splits)]
    for grouping, rows in body.groups.items():
        body_rows: list[list[Cell]] = [[r["group"], r["split"], *_inspect_values(r)] for r in rows]
        tables.append(TableView(f"By {grouping}", ["group", "split", *columns], body_rows))
    return tables


def _run_tables(run: dict[str, Any], method: Method) -> list[TableView]:
    """The head of an audit report: what was trained on what, and how much of each group."""
    untrained = bool(run.get("no_train"))
    subset = run["train_subset"] + (" (not used: --no-train)" if untrained else "")
    model = run["model"] + (" as it is" if untrained else ", fine-tuned on the training subset")
    rows: list[list[Cell]] = [
        ["model", model],
        ["dataset", run["dataset"]],
        ["training subset", subset],
        ["split", run["split"]],
    ]
    if method.to_json():
        rows.append(["statistics", interval_phrase(method)])
    tables = [TableView("Run", ["field", "value"], rows)]
    if untrained:  # nothing was trained: the subset's sizes would only mislead
        return tables
    total = run["subset_total"]
    for grouping, sizes in run["subset_size"].items():
        body: list[list[Cell]] = [[r["group"], *_inspect_values(r)] for r in sizes]
        body.append(["all", *_inspect_values(total)])
        title = f"Training subset '{run['train_subset']}' by {grouping}"
        tables.append(TableView(title, ["group", "utterances", "speakers", "hours"], body))
    return tables


@layout("audit")
def audit_tables(body: ScoreBody) -> list[TableView]:
    """An audit's run (when it has one), then its scores."""
    head = [] if body.run is None else _run_tables(body.run, body.method)
    return head + score_tables(body)


def largest_wer_gap(gaps: list[Gap]) -> Gap | None:
    """The largest WER gap of a grouping: its worst - best row, else its largest difference."""
    wer = [g for g in gaps if g.metric == "wer" and g.diff.value is not None]
    largest = [g for g in wer if g.kind == "largest"]
    return largest[0] if largest else max(wer, key=lambda g: g.diff.value or 0.0, default=None)


def _study_row(run: StudyRun, grouping: str, names: list[str], notes: list[str]) -> list[Cell]:
    """One run of a study: training sizes, overall and per-group WER, its largest WER gap."""
    sizes = {r["group"]: r["n_utterances"] for r in run.subset_size.get(grouping, [])}
    by_group = {e.group: e for e in run.groups[grouping]}
    gap = largest_wer_gap(run.gaps.get(grouping, []))
    warnings = [w for e in run.groups[grouping] for w in e.warnings]
    return [
        run.subset,
        run.hparams,
        " / ".join(str(sizes.get(n, 0)) for n in names),
        run.overall.rate("wer"),
        run.overall.rate("cer"),
        *[by_group[n].rate("wer") if n in by_group else RateCell(None) for n in names],
        "" if gap is None else f"{gap.a} - {gap.b}: " + gap.diff.percent(),
        None if gap is None else gap.adjusted,
        _footnote_marks(list(dict.fromkeys(warnings)), notes),
    ]


def _comparison_rows(body: StudyBody) -> list[list[Cell]]:
    """Each paired comparison's WER, overall and per group."""
    rows: list[list[Cell]] = []
    for cmp in body.comparisons:
        scopes: list[tuple[str, RateEntry]] = [("all", cmp.overall)]
        scopes += [(f"{g}={e.group}", e) for g, es in cmp.groups.items() for e in es]
        for label, entry in scopes:
            wer = entry.paired("wer")
            if wer is None:
                continue
            rates: list[Cell] = [RateCell(wer.rate_a), RateCell(wer.rate_b), wer.diff]
            rows.append([cmp.a, cmp.b, label, *rates, wer.p_b_better, wer.p_a_better, wer.p_tie])
    return rows


@layout("study")
def study_tables(body: StudyBody) -> list[TableView]:
    """One table of runs per grouping, then the paired comparisons."""
    runs = body.runs
    tables = []
    for grouping in list(runs[0].groups) if runs else []:
        names = sorted({e.group for r in runs for e in r.groups[grouping]})
        header = ["subset", "hparams", f"train utts ({' / '.join(names)})", "WER", "CER"]
        header += [f"WER {n}" for n in names] + ["largest gap (pts)", "p (adj.)", "note"]
        notes: list[str] = []
        rows = [_study_row(run, grouping, names, notes) for run in runs]
        tables.append(TableView(f"Runs by {grouping}", header, rows, _numbered(notes)))
    for run in runs:
        tables += metric_tables(run.tables, prefix=f"{run.name}: ")
    rows = _comparison_rows(body)
    if rows:
        header = ["A", "B", "scope", "WER A", "WER B", "B - A (pts)", "P(B better)"]
        header += ["P(A better)", "P(tie)"]
        tables.append(TableView("Paired comparisons (same test set)", header, rows))
    return tables


def report_tables(report: Report) -> list[TableView]:
    """Lay a report out as titled tables (its kind's registered layout); row warnings become
    numbered notes under each."""
    if report.kind not in LAYOUTS:
        known = ", ".join(sorted(LAYOUTS))
        raise AsrfairError(f"no table layout for report kind {report.kind!r}; known: {known}")
    tables = LAYOUTS[report.kind](report.body)
    if report.bold_best:
        for table in tables:
            if table.title.startswith(("Runs by", "By ")):
                rates = [i for i, c in enumerate(table.columns) if c.startswith(("WER", "CER"))]
                table.mark_best(rates)
    return tables


def report_title(report: Report) -> str:
    body = report.body
    config = body.config
    source = config.get("input") or ", ".join(map(str, config.get("inputs", [])))
    what = {"compare": "Paired comparison", "inspect": "Dataset", "study": "Study"}.get(
        report.kind, "ASR fairness audit"
    )
    if isinstance(body, StudyBody):
        source = body.study
    if isinstance(body, InspectBody):
        source = body.dataset
    if report.kind == "audit" and isinstance(body, ScoreBody) and body.run is not None:
        run = body.run
        source = f"{Path(run['model']).name or run['model']} on {run['dataset']}, test set"
    return f"{what}: {source}" if source else what
