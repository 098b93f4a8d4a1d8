"""The Report: plain data that every exporter renders, and the shared table layout.

A Report is what ``metrics.json`` holds. ``report_tables`` lays it out once as
titled tables of cells, so the terminal, Markdown and LaTeX tables of one run
always agree with each other and with the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from asrfair.stats import AUTO_MIN_SPEAKERS


@dataclass
class Report:
    """``kind`` is ``score`` or ``compare``; ``data`` follows docs/json-schema.md."""

    kind: str
    data: dict[str, Any]
    bold_best: bool = False  # a rendering choice, not data: never stored in metrics.json

    @property
    def method(self) -> dict[str, Any]:
        return dict(self.data.get("method", {}))

    @property
    def warnings(self) -> list[str]:
        return list(self.data.get("warnings", []))


# An exporter plugin: text for a file or stdout, or a rich renderable for the terminal.
Exporter = Callable[[Report], str | RenderableType]


@dataclass(frozen=True)
class Interval:
    """A rate with its interval; humans see percentages, machines see fractions."""

    value: float | None
    ci: tuple[float | None, float | None] | None = None  # a None end: unbounded that side

    def percent(self) -> str:
        if self.value is None:
            return "n/a"
        text = _pct(self.value)
        if self.ci is not None:
            lower = "(-inf" if self.ci[0] is None else f"[{_pct(self.ci[0])}"
            upper = "inf)" if self.ci[1] is None else f"{_pct(self.ci[1])}]"
            text += f" {lower}, {upper}"
        return text


def _pct(fraction: float) -> str:
    """One decimal of a percentage, never "-0.0"."""
    text = f"{100 * fraction:.1f}"
    return "0.0" if text == "-0.0" else text


Cell = str | int | float | None | Interval


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
                if isinstance((cell := row[col]), Interval) and cell.value is not None
            ]
            if values:
                best = min(v for v, _ in values)
                self.bold |= {(i, col) for v, i in values if v == best}


def format_cell(cell: Cell) -> str:
    if isinstance(cell, Interval):
        return cell.percent()
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.3g}" if abs(cell) < 1e-3 and cell != 0 else f"{cell:.3f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return str(cell)


def interval_phrase(method: dict[str, Any]) -> str:
    """How the intervals were made, e.g. "95% linearised t intervals over speakers"."""
    confidence = round(100 * float(method.get("confidence", 0.95)))
    unit = method.get("resampling_unit", "?")
    interval = method.get("interval", "percentile")
    draws = method.get("draws", 0)
    if interval == "none" or (interval != "t" and not draws):
        return "no intervals (--bootstrap 0)"
    if interval == "t":
        return f"{confidence}% linearised t intervals over {unit}s (k-1 df; Welch for gaps)"
    if interval == "auto":
        return (
            f"{confidence}% bootstrap-t intervals from {draws:,} draws resampling {unit}s within "
            f"each group, seed {method.get('seed')} (linearised t intervals for groups of fewer "
            f"than {AUTO_MIN_SPEAKERS} speakers)"
        )
    return (
        f"{confidence}% {interval} intervals from {draws:,} bootstrap draws resampling "
        f"{unit}s within each group, seed {method.get('seed')}"
    )


def method_sentence(method: dict[str, Any]) -> str:
    """The sentence printed under every table: how each number was computed."""
    if not method:
        return ""
    if "draws" not in method and "split" in method:
        return f"Split: {method['split']}. Hours from clip durations."
    phrase = interval_phrase(method)
    text = "Rates in % are corpus-level (sum of errors / sum of reference tokens). "
    text += phrase[0].upper() + phrase[1:] + "."
    if "permutations" in method:
        unit = method.get("resampling_unit", "?")
        if not method["permutations"]:
            text += " No gap p-values (--permutations 0)."
        else:
            family = method.get("p_adjust_family", "Holm within each grouping")
            test = (
                f"studentised permutation test over {unit}s ({method['permutations']:,} "
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


def _rate_fields(entry: dict[str, Any]) -> list[str]:
    """Every field that has a matching ``<field>_ci`` is a rate: WER, CER, plugin rates."""
    return [k for k in entry if f"{k}_ci" in entry]


def _pair(ci: list[float | None] | None) -> tuple[float | None, float | None] | None:
    """A stored ``[low, high]`` list as an interval tuple (JSON has no tuples); None: open."""
    return (ci[0], ci[1]) if ci else None


def _interval(entry: dict[str, Any], name: str) -> Interval:
    ci = entry.get(f"{name}_ci")
    return Interval(entry.get(name), _pair(ci))


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


def _entry_row(label: str, entry: dict[str, Any], rates: list[str], notes: list[str]) -> list[Cell]:
    words = entry.get("n_ref_words")
    errors = f"{entry['errors']:,}/{words:,}" if "errors" in entry and words is not None else ""
    return [
        label,
        *[_interval(entry, r) for r in rates],
        errors,
        entry.get("n_utterances"),
        entry.get("n_speakers"),
        _footnote_marks(entry.get("warnings", []), notes),
    ]


def _score_tables(data: dict[str, Any]) -> list[TableView]:
    overall = data["overall"]
    rates = _rate_fields(overall)
    for entries in data["groups"].values():
        rates += [r for e in entries for r in _rate_fields(e) if r not in rates]
    header = ["group", *[r.upper() for r in rates], "errors/words", "utts", "speakers", "note"]
    notes: list[str] = []
    tables = [TableView("Overall", header, [_entry_row("all", overall, rates, notes)])]
    tables[0].notes = _numbered(notes)
    for grouping, entries in data["groups"].items():
        notes = []
        rows = [_entry_row(str(e["group"]), e, rates, notes) for e in entries]
        dropped = [d["message"] for g, d in data.get("dropped", {}).items() if g == grouping]
        tables.append(TableView(f"By {grouping}", header, rows, _numbered(notes) + dropped))
    for grouping, gaps in data.get("gaps", {}).items():
        if gaps:
            tables.append(_gap_table(grouping, gaps, data.get("gap_notes", {}).get(grouping, [])))
    return tables


GAP_ROWS_SHOWN = 20  # a table lists at most this many gaps; JSON and CSV keep them all


def gap_label(g: dict[str, Any]) -> str:
    if g.get("kind") == "largest":
        return f"largest: {g['a']} - {g['b']}"
    return f"{g['a']} vs {g['b']}"


def _gap_table(grouping: str, gaps: list[dict[str, Any]], extra: list[str]) -> TableView:
    """One row per gap; past GAP_ROWS_SHOWN rows the largest gap and smallest p come first."""
    shown = gaps
    if len(gaps) > GAP_ROWS_SHOWN:
        shown = sorted(
            gaps,
            key=lambda g: (
                g.get("kind") != "largest",
                2.0 if g["p_value"] is None else g["p_value"],
            ),
        )[:GAP_ROWS_SHOWN]
    notes: list[str] = []
    rows: list[list[Cell]] = [
        [
            gap_label(g),
            g["metric"].upper(),
            Interval(g["diff"], _pair(g["diff_ci"])),
            _ratio_text(g),
            g["p_value"],
            g.get("p_adjusted", g.get("p_holm")),
            _footnote_marks(g.get("warnings", []), notes),
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


def _ratio_text(g: dict[str, Any]) -> str:
    if g["ratio"] is None:
        return "n/a"
    text = f"{g['ratio']:.2f}"
    ci = g.get("ratio_ci")
    if ci:
        upper = "inf)" if ci[1] is None else f"{ci[1]:.2f}]"
        text += f" [{ci[0]:.2f}, {upper}"  # a ratio's lower end is never below 0
    return text


def _compare_row(
    label: str, metric: str, cmp: dict[str, Any], entry: dict[str, Any], notes: list[str]
) -> list[Cell]:
    diff_ci = cmp.get("diff_ci")
    return [
        label,
        metric.upper(),
        Interval(cmp.get("rate_a")),
        Interval(cmp.get("rate_b")),
        Interval(cmp.get("diff"), _pair(diff_ci)),
        cmp.get("p_b_better"),
        cmp.get("p_a_better"),
        cmp.get("p_tie"),
        entry.get("n_speakers"),
        _footnote_marks(entry.get("warnings", []), notes),
    ]


def _compare_tables(data: dict[str, Any]) -> list[TableView]:
    header = ["group", "metric", "A", "B", "B - A (pts)", "P(B better)", "P(A better)", "P(tie)"]
    header += ["speakers", "note"]
    scopes = [("Overall", [("all", data["overall"])])]
    scopes += [(f"By {g}", [(str(e["group"]), e) for e in es]) for g, es in data["groups"].items()]
    tables = []
    for title, entries in scopes:
        notes: list[str] = []
        rows = [
            _compare_row(label, metric, entry[metric], entry, notes)
            for label, entry in entries
            for metric in ("wer", "cer")
            if metric in entry
        ]
        tables.append(TableView(title, header, rows, _numbered(notes)))
    systems = data.get("systems", {})
    tables[0].notes.append(f"A = {systems.get('a')}; B = {systems.get('b')}")
    return tables


def _inspect_values(row: dict[str, Any]) -> list[Cell]:
    return [row["n_utterances"], row["n_speakers"], f"{row['hours']:.2f}"]


def _inspect_tables(data: dict[str, Any]) -> list[TableView]:
    columns = ["utterances", "speakers", "hours"]
    splits: list[list[Cell]] = [[r["split"], *_inspect_values(r)] for r in data["splits"]]
    tables = [TableView("Splits", ["split", *columns], splits)]
    for grouping, rows in data["groups"].items():
        body: list[list[Cell]] = [[r["group"], r["split"], *_inspect_values(r)] for r in rows]
        tables.append(TableView(f"By {grouping}", ["group", "split", *columns], body))
    return tables


def _method_short(method: dict[str, Any]) -> str:
    return interval_phrase(method)


def _run_tables(run: dict[str, Any], method: dict[str, Any]) -> list[TableView]:
    """The head of an audit report: what was trained on what, and how much of each group."""
    subset = run["train_subset"] + (" (not used: --no-train)" if run.get("no_train") else "")
    rows: list[list[Cell]] = [
        ["model", run["model"]],
        ["dataset", run["dataset"]],
        ["training subset", subset],
        ["split", run["split"]],
    ]
    if method:
        rows.append(["statistics", _method_short(method)])
    tables = [TableView("Run", ["field", "value"], rows)]
    total = run["subset_total"]
    for grouping, sizes in run["subset_size"].items():
        body: list[list[Cell]] = [[r["group"], *_inspect_values(r)] for r in sizes]
        body.append(["all", *_inspect_values(total)])
        title = f"Training subset '{run['train_subset']}' by {grouping}"
        tables.append(TableView(title, ["group", "utterances", "speakers", "hours"], body))
    return tables


def _pair_label(gaps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The largest WER gap of a grouping: its worst - best row, else its largest difference."""
    wer = [g for g in gaps if g["metric"] == "wer" and g["diff"] is not None]
    largest = [g for g in wer if g.get("kind") == "largest"]
    return largest[0] if largest else max(wer, key=lambda g: g["diff"], default=None)


def _study_tables(data: dict[str, Any]) -> list[TableView]:
    runs = data["runs"]
    groupings = list(runs[0]["groups"]) if runs else []
    tables = []
    for grouping in groupings:
        names = sorted({e["group"] for r in runs for e in r["groups"][grouping]})
        header = ["subset", "hparams", f"train utts ({' / '.join(names)})", "WER", "CER"]
        header += [f"WER {n}" for n in names] + ["largest gap (pts)", "p (adj.)", "note"]
        rows: list[list[Cell]] = []
        notes: list[str] = []
        for run in runs:
            sizes = {r["group"]: r["n_utterances"] for r in run["subset_size"].get(grouping, [])}
            by_group = {e["group"]: e for e in run["groups"][grouping]}
            gap = _pair_label(run["gaps"].get(grouping, []))
            warnings = [w for e in run["groups"][grouping] for w in e.get("warnings", [])]
            rows.append(
                [
                    run["subset"],
                    run["hparams"],
                    " / ".join(str(sizes.get(n, 0)) for n in names),
                    _interval(run["overall"], "wer"),
                    _interval(run["overall"], "cer"),
                    *[_interval(by_group.get(n, {}), "wer") for n in names],
                    ""
                    if gap is None
                    else f"{gap['a']} - {gap['b']}: "
                    + Interval(gap["diff"], _pair(gap["diff_ci"])).percent(),
                    None if gap is None else gap.get("p_adjusted", gap.get("p_holm")),
                    _footnote_marks(list(dict.fromkeys(warnings)), notes),
                ]
            )
        tables.append(TableView(f"Runs by {grouping}", header, rows, _numbered(notes)))
    rows = []
    for cmp in data.get("comparisons", []):
        scopes = [("all", cmp["overall"])] + [
            (f"{g}={e['group']}", e) for g, es in cmp["groups"].items() for e in es
        ]
        for label, entry in scopes:
            wer = entry["wer"]
            rows.append(
                [
                    cmp["a"],
                    cmp["b"],
                    label,
                    Interval(wer["rate_a"]),
                    Interval(wer["rate_b"]),
                    Interval(wer["diff"], _pair(wer["diff_ci"])),
                    wer["p_b_better"],
                    wer.get("p_a_better"),
                    wer.get("p_tie"),
                ]
            )
    if rows:
        header = ["A", "B", "scope", "WER A", "WER B", "B - A (pts)", "P(B better)"]
        header += ["P(A better)", "P(tie)"]
        tables.append(TableView("Paired comparisons (same test set)", header, rows))
    return tables


def report_tables(report: Report) -> list[TableView]:
    """Lay a report out as titled tables; row warnings become numbered notes under each."""
    if report.kind == "study":
        tables = _study_tables(report.data)
    elif report.kind == "compare":
        tables = _compare_tables(report.data)
    elif report.kind == "inspect":
        tables = _inspect_tables(report.data)
    elif report.kind == "audit" and "run" in report.data:
        tables = _run_tables(report.data["run"], report.method) + _score_tables(report.data)
    else:
        tables = _score_tables(report.data)
    if report.bold_best:
        for table in tables:
            if table.title.startswith(("Runs by", "By ")):
                rates = [i for i, c in enumerate(table.columns) if c.startswith(("WER", "CER"))]
                table.mark_best(rates)
    return tables


def report_title(report: Report) -> str:
    config = report.data.get("config", {})
    source = config.get("input") or ", ".join(map(str, config.get("inputs", [])))
    what = {"compare": "Paired comparison", "inspect": "Dataset", "study": "Study"}.get(
        report.kind, "ASR fairness audit"
    )
    if report.kind == "study":
        source = str(report.data.get("study", ""))
    if report.kind == "inspect":
        source = str(report.data.get("dataset", ""))
    if report.kind == "audit" and "run" in report.data:
        run = report.data["run"]
        source = f"{Path(run['model']).name or run['model']} on {run['dataset']}, test set"
    return f"{what}: {source}" if source else what
