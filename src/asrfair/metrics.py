"""The metric stage: metric plugins read a ScoreTable and fill a Report's data.

A metric receives a ``MetricContext``. The context knows the groups, the
resampling unit and the seeded draws, so a plugin metric such as sentence error
rate gets speaker-bootstrap intervals by handing over a numerator and a
denominator, exactly as the built-in WER does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from asrfair import __version__
from asrfair.errors import AsrfairError
from asrfair.groups import group_labels
from asrfair.report import Report, speakers_method
from asrfair.report_model import ScoreBody
from asrfair.scoring import ScoreTable
from asrfair.stats import Estimate, SharedDraws, StatsConfig, estimate, moments, unit_sums

DEFAULT_METRICS = ("wer", "cer", "group_wer", "group_cer", "gap")
OPTION_SEP = ":"  # regression:covariates=n_words+duration:reference=male
LIST_SEP = "+"  # a list value: covariates=n_words+duration


def split_metric_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``name:key=value:key=value`` as the metric's name and its options.

    Options ride inside the ``--metrics`` text, so every path that carries metric names (the
    command line, an audit's config.json, a study file, the API) carries them too, and no
    metric's option has to be added to the core by name. ``:`` and ``+`` need no shell
    quoting and cannot clash with the commas that separate metrics.
    """
    name, _, rest = spec.strip().partition(OPTION_SEP)
    options: dict[str, str] = {}
    for part in rest.split(OPTION_SEP) if rest else []:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AsrfairError(
                f"--metrics {spec}: {part!r} is not an option; write "
                f"{name}:KEY=VALUE (several: {name}:a=1:b=x+y)"
            )
        if key in options:
            raise AsrfairError(f"--metrics {spec}: option {key!r} is given twice; keep one")
        options[key] = value.strip()
    return name.strip(), options


def _plain(value: float | None) -> float | None:
    return None if value is None else round(float(value), 10)


def plain_ci(ci: tuple[float | None, float | None] | None) -> list[float | None] | None:
    """An interval as JSON: ``[low, high]``; a null end is open (unbounded) on that side."""
    return None if ci is None else [_plain(ci[0]), _plain(ci[1])]


class MetricContext:
    """What a metric may read (the table, its groups, the statistics options) and write."""

    def __init__(self, table: ScoreTable, cfg: StatsConfig) -> None:
        self.table = table
        self.cfg = cfg
        self.unit = "speaker" if table.has_speakers else "utterance"
        self.draws = SharedDraws(cfg)
        self._units = table.units()
        self._labels = {g: group_labels(table.frame, g) for g in table.groupings}
        self.overall: dict[str, Any] = self._new_entry(np.ones(len(table.frame), dtype=bool))
        self.groups: dict[str, dict[str, dict[str, Any]]] = {
            grouping: {
                name: self._new_entry(self.mask(grouping, name), group=name)
                for name in self.group_names(grouping)
            }
            for grouping in table.groupings
        }
        self.gaps: dict[str, list[dict[str, Any]]] = {}
        self.gap_notes: dict[str, list[str]] = {}
        self.warnings: list[str] = self._unit_warnings()
        self.rate_fields: list[str] = []  # declared by record_rate: the report's rate columns
        self.running = ""  # the metric now writing, named when it clashes with another
        self.options: dict[str, str] = {}  # the running metric's options (name:key=value)
        self.options_read: set[str] = set()
        self.tables: list[dict[str, Any]] = []  # add_table: a metric's own result tables
        self._rate_owner: dict[tuple[str, str | None], str] = {}

    # -- reading ---------------------------------------------------------------
    @property
    def groupings(self) -> tuple[str, ...]:
        """The ``--groups`` specs; ``gender*age`` is one of them, but not a column."""
        return self.table.groupings

    def labels(self, grouping: str) -> pd.Series:
        """Each row's group under ``grouping`` (``female*twenties``), NA where a part is empty:
        the way to read an intersectional grouping, which ``table.frame`` has no column for."""
        return self._labels[grouping]

    def group_names(self, grouping: str) -> list[str]:
        return sorted(self._labels[grouping].dropna().unique().tolist())

    def mask(self, grouping: str | None, group: str | None) -> np.ndarray:
        if grouping is None:
            return np.ones(len(self.table.frame), dtype=bool)
        return (self._labels[grouping] == group).fillna(False).to_numpy(dtype=bool)

    def labelled(self, grouping: str) -> np.ndarray:
        """Rows that have a value in ``grouping`` (the others take no part in it)."""
        return self._labels[grouping].notna().to_numpy(dtype=bool)

    def n_dropped(self, grouping: str) -> int:
        return int(self._labels[grouping].isna().sum())

    def n_units(self, mask: np.ndarray) -> int:
        return int(pd.Series(self._units[mask]).nunique())

    def unit_sums(self, values: np.ndarray, grouping: str | None, group: str | None) -> np.ndarray:
        return self.sums_in(values, self.mask(grouping, group))

    def sums_in(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Per-unit column sums of ``values`` over the rows in ``mask``."""
        return unit_sums(np.asarray(values)[mask], self._units[mask])

    def rate(
        self,
        numerator: np.ndarray,
        denominator: np.ndarray,
        grouping: str | None = None,
        group: str | None = None,
    ) -> Estimate:
        """Corpus rate over one group (or all rows) with the configured interval.

        Bootstrap draws depend only on the seed, the grouping and the group, and are drawn
        once per group: every rate of a group (WER, CER, a plugin's) uses the same draws.
        """
        values = np.column_stack([np.asarray(numerator), np.asarray(denominator)])
        sample = moments(self.unit_sums(values, grouping, group))
        return estimate("rate", [sample], self.cfg, self.draws_for(sample, grouping, group))

    def draws_for(
        self, sample: np.ndarray, grouping: str | None, group: str | None
    ) -> list[np.ndarray] | None:
        """Bootstrap moment totals of one group's ``sample`` (None when the interval needs none)."""
        if not self.cfg.uses_draws:
            return None
        return [self.draws.totals(sample, grouping or "", group or "(overall)")]

    def option(self, key: str, default: str | None = None) -> str | None:
        """The running metric's option ``key`` (``--metrics name:key=value``), else ``default``.

        Read every option you support, used or not: after the metric returns, an option it
        never asked for is reported as unknown (a typo never passes silently)."""
        self.options_read.add(key)
        return self.options.get(key, default)

    def option_list(self, key: str) -> list[str]:
        """An option that lists names, ``key=a+b``, as ``["a", "b"]`` (empty when absent)."""
        value = self.option(key) or ""
        return [item.strip() for item in value.split(LIST_SEP) if item.strip()]

    # -- writing ---------------------------------------------------------------
    def add_table(
        self,
        title: str,
        columns: list[str],
        rows: list[list[Any]],
        notes: list[str] | None = None,
    ) -> None:
        """A titled table of results for every exporter (rich, md, latex, csv, json...).

        For results that are not one value per group (a model's coefficients, say). A cell is
        text, a number, None, or ``{"value": x, "ci": [low, high]}``; the first column names
        the row (CSV's ``group``)."""
        for row in rows:
            if len(row) != len(columns):
                raise AsrfairError(
                    f"metric {self.running!r} wrote a row of {len(row)} cells into table "
                    f"{title!r} of {len(columns)} columns; report it to the metric's authors"
                )
        self.tables.append(
            {
                "title": title,
                "metric": self.running,
                "columns": list(columns),
                "rows": [[_table_cell(cell) for cell in row] for row in rows],
                "notes": list(notes or []),
            }
        )

    def _new_entry(self, mask: np.ndarray, group: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {} if group is None else {"group": group}
        entry["n_utterances"] = int(mask.sum())
        warnings: list[str] = []
        if self.table.has_speakers:
            n_speakers = self.n_units(mask)
            entry["n_speakers"] = n_speakers
            if group is not None and n_speakers < self.cfg.min_speakers:
                warnings.append(
                    f"only {n_speakers} speaker(s) (< {self.cfg.min_speakers}): interval unreliable"
                )
        else:
            entry["n_speakers"] = None
        entry["warnings"] = warnings
        return entry

    def _unit_warnings(self) -> list[str]:
        """Blank speaker ids, and speakers found in two groups of one grouping."""
        warnings = []
        blank = int(self.table.blank_speakers.sum()) if self.table.has_speakers else 0
        if blank:
            warnings.append(
                f"{blank:,} row(s) have a blank speaker id: each is resampled as its own unit "
                "(intervals are too narrow if they share a speaker)"
            )
        if not self.table.has_speakers:
            return warnings  # utterance units are in one group each by construction
        for grouping, labels in self._labels.items():
            per_unit = pd.DataFrame({"unit": self._units, "label": labels}).dropna()
            counts = per_unit.groupby("unit", sort=True)["label"].nunique()
            shared = counts[counts > 1].index.tolist()
            if shared:
                named = ", ".join(map(str, shared[:5])) + (" ..." if len(shared) > 5 else "")
                warnings.append(
                    f"{len(shared)} speaker(s) in more than one {grouping} group ({named}): "
                    "their groups are not independent samples, so gap intervals and tests "
                    "for them are approximate"
                )
        return warnings

    def entry(self, grouping: str | None, group: str | None) -> dict[str, Any]:
        return self.overall if grouping is None else self.groups[grouping][str(group)]

    def record_rate(
        self,
        name: str,
        numerator: np.ndarray,
        denominator: np.ndarray,
        *,
        grouping: str | None = None,
        counts: dict[str, np.ndarray] | None = None,
        unit_name: str = "reference words",
    ) -> None:
        """Write ``name`` and ``name_ci`` (and summed ``counts``) into one entry per scope, and
        declare ``name`` a rate: the report's typed entries hold it as a ``RateCell``.

        With ``grouping`` None that is the overall entry; otherwise every group of it. An
        undefined rate (no reference tokens) is written as None with a warning, never 0/0.
        """
        owner = self._rate_owner.setdefault((name, grouping), self.running)
        if owner != self.running:
            scope = f"by {grouping}" if grouping else "overall"
            raise AsrfairError(
                f"metric {self.running!r} records the rate {name!r} {scope}, which metric "
                f"{owner!r} already recorded; give the new rate its own name"
            )
        if name not in self.rate_fields:
            self.rate_fields.append(name)
        scopes = [None] if grouping is None else self.group_names(grouping)
        for group in scopes:
            result = self.rate(numerator, denominator, grouping, group)
            entry = self.entry(grouping, group)
            mask = self.mask(grouping, group)
            for field, values in (counts or {}).items():
                entry[field] = int(np.asarray(values)[mask].sum())
            entry[name] = _plain(result.value)
            entry[f"{name}_ci"] = plain_ci(result.ci)
            if result.value is None:
                errors = float(np.asarray(numerator)[mask].sum())
                entry["warnings"].append(f"no {unit_name}: {name} undefined ({errors:g} errors)")
            elif result.reason and self.cfg.intervals_on:
                entry["warnings"].append(f"{name}: {result.reason}")


def _table_cell(cell: Any) -> Any:
    """A table cell as JSON, rounded as entries are; NaN or infinity is the metric's bug."""
    if isinstance(cell, dict):
        if set(cell) != {"value", "ci"}:
            raise AsrfairError(f"a table cell is a value or {{'value', 'ci'}}, not {cell!r}")
        return {"value": _table_cell(cell["value"]), "ci": plain_ci(cell["ci"])}
    if isinstance(cell, bool) or cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, int | np.integer):
        return int(cell)
    return _plain(float(cell))


def check_entries(ctx: MetricContext, metric: str) -> None:
    """What a metric left in the report must be numbers a reader can trust: no NaN or infinity
    (not valid JSON), no negative rate, and intervals as ``[low, high]`` with low <= high."""
    entries = [("overall", ctx.overall)] + [
        (f"{grouping}={group}", entry)
        for grouping, groups in ctx.groups.items()
        for group, entry in groups.items()
    ]
    entries += [
        (f"table {t['title']!r}", {"cells": [c for row in t["rows"] for c in _cell_values(row)]})
        for t in ctx.tables
        if t["metric"] == metric
    ]
    for where, entry in entries:
        for key, value in entry.items():
            problem = bad_value(key, value, entry)
            if problem:
                raise AsrfairError(
                    f"metric {metric!r} wrote {where} {key} = {value!r}: {problem}; report it to "
                    "the metric's authors"
                )


def _cell_values(row: list[Any]) -> list[Any]:
    """The numbers of a table row, intervals' ends included."""
    out = []
    for cell in row:
        out += [cell["value"], *(cell["ci"] or [])] if isinstance(cell, dict) else [cell]
    return out


def check_options(ctx: MetricContext, spec: str) -> None:
    """An option the metric never read is a typo or an option it does not have."""
    unread = sorted(set(ctx.options) - ctx.options_read)
    if unread:
        known = ", ".join(sorted(ctx.options_read)) or "none"
        raise AsrfairError(
            f"--metrics {spec}: metric {ctx.running!r} has no option {unread[0]!r}; "
            f"its options: {known}"
        )


def bad_value(key: str, value: Any, entry: dict[str, Any]) -> str:
    """Why a report entry's value cannot be trusted, or "" when it can."""
    numbers = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, float) and not np.isfinite(v) for v in numbers):
        return "not a finite number"
    if key.endswith("_ci") and value is not None:
        if not isinstance(value, list | tuple) or len(value) != 2:
            return "an interval must be [low, high]"
        low, high = value
        if not all(v is None or isinstance(v, int | float) for v in value):
            return "an interval's ends must be numbers (or null when open)"
        if low is not None and high is not None and low > high:
            return "the interval's low end is above its high end"
    rate = f"{key}_ci" in entry and not key.startswith("diff")
    if rate and value is not None and (not isinstance(value, int | float) or value < 0):
        return "a rate must be a number of 0 or more"
    return ""


Metric = Callable[[MetricContext], None]  # a metric plugin: reads ctx.table, writes through ctx


def run_metrics(
    table: ScoreTable,
    cfg: StatsConfig,
    metrics: Mapping[str, Metric],
    *,
    config: dict[str, Any] | None = None,
) -> Report:
    """Apply the metrics (keyed by their ``--metrics`` text, options included, in order) and
    assemble the Report data (the JSON contract)."""
    names = list(metrics)
    ctx = MetricContext(table, cfg)
    for spec, metric in metrics.items():
        ctx.running, ctx.options = split_metric_spec(spec)
        ctx.options_read = set()
        metric(ctx)
        check_options(ctx, spec)
        check_entries(ctx, ctx.running)
    dropped = {}
    for grouping in table.groupings:
        n = ctx.n_dropped(grouping)
        if n:
            message = f"dropped {n:,} of {len(table.frame):,} rows with empty {grouping}"
            dropped[grouping] = {"rows": n, "of": len(table.frame), "message": message}
            ctx.warnings.append(message)
    if not table.has_speakers:
        ctx.warnings.append(
            "no speaker column: intervals resample utterances, which understates uncertainty"
        )
    if cfg.n_boot <= 0:
        ctx.warnings.append("--bootstrap 0: no confidence intervals were computed")
    data: dict[str, Any] = {
        "overall": ctx.overall,
        "groups": {g: list(entries.values()) for g, entries in ctx.groups.items()},
        "gaps": ctx.gaps,
        "gap_notes": ctx.gap_notes,
        "method": {
            **cfg.method(ctx.unit),
            "metrics": list(names),
            **speakers_method(table.speakers_unknown),
        },
        "dropped": dropped,
        "warnings": list(table.notes) + ctx.warnings,
        "config": {"asrfair_version": __version__, **(config or {})},
    }
    if ctx.tables:  # absent otherwise, so reports without them keep the JSON they had
        data["tables"] = ctx.tables
    return Report("score", ScoreBody.from_json(data, rates=ctx.rate_fields))
