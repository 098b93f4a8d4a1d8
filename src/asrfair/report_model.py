"""The typed report model: what ``metrics.json``, ``study.json`` and ``--format json`` hold.

The JSON documented in docs/json-schema.md is a contract that other tools read, so every
record here reads it with ``from_json`` and writes it with ``to_json``, and a record read from
a file writes back the same keys in the same order with the same values: a stored report that
is loaded and written again is byte-identical. Fields a record does not name (a plugin's, or
a newer asrfair's) ride along in ``extra``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from asrfair.errors import AsrfairError

Json = dict[str, Any]
CI = tuple[float | None, float | None]  # a None end: unbounded on that side


@dataclass(frozen=True)
class RateCell:
    """A value with its optional interval: a WER, a gap's difference or ratio.

    Humans see percentages (``percent``), machines see fractions (``to_json``)."""

    value: float | None
    ci: CI | None = None

    @classmethod
    def from_json(cls, value: float | None, ci: list[float | None] | None) -> RateCell:
        """JSON stores the interval as a ``[low, high]`` list (it has no tuples) or null."""
        return cls(value, None if ci is None else (ci[0], ci[1]))

    def ci_json(self) -> list[float | None] | None:
        return None if self.ci is None else [self.ci[0], self.ci[1]]

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


def _cell_json(name: str, cell: RateCell) -> Json:
    """A rate as its two JSON fields, ``name`` and ``name_ci``, side by side."""
    return {name: cell.value, f"{name}_ci": cell.ci_json()}


def _cell(data: Json, name: str) -> RateCell:
    return RateCell.from_json(data.get(name), data.get(f"{name}_ci"))


def undeclared_rate(value: Any, ci: Any) -> bool:
    """Whether a field that nobody declared a rate is one, by its shape: the one place that
    guesses. A stored JSON file carries no types, and a plugin may write ``x`` and ``x_ci``
    into ``ctx.overall`` by hand instead of calling ``record_rate``. The caller has checked
    that ``x_ci`` is the very next key; a rate is a number (or null: undefined) and its
    interval ``[low, high]`` or null."""
    number = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    return number and (ci is None or (isinstance(ci, list) and len(ci) == 2))


@dataclass
class Record:
    """The base of the records below: named, typed fields, plus what the type does not name.

    ``keys`` is the key order the record was read with; a record built in code has None and
    writes its named fields in their declared order, then ``extra``."""

    extra: Json = field(default_factory=dict, kw_only=True, repr=False)
    keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)

    CELLS: ClassVar[tuple[str, ...]] = ()  # RateCell fields: each is two keys, x and x_ci

    def named_json(self) -> Json:
        """The named fields as JSON, in their declared order: a ``RateCell`` as its value and
        ``_ci`` keys side by side, records and entries by their own ``to_json``."""
        out: Json = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("extra", "keys"):
                continue
            if isinstance(value, RateCell):
                out.update(_cell_json(f.name, value))
            else:
                out[f.name] = _json_of(value)
        return out

    @classmethod
    def json_names(cls) -> set[str]:
        """The JSON keys that the named fields cover; the others go to ``extra``."""
        names = {f.name for f in fields(cls)} - {"extra", "keys"}
        return names | {f"{name}_ci" for name in cls.CELLS}

    def to_json(self) -> Json:
        """The documented JSON. Read from a file, a record writes back the keys it read, in
        their order, then what was set since: a field an older file lacks stays absent while
        it is None."""
        flat = {**self.named_json(), **self.extra}
        if self.keys is None:
            return flat
        out = {k: flat[k] for k in self.keys if k in flat}
        out.update(
            (k, v) for k, v in flat.items() if k not in out and (k in self.extra or v is not None)
        )
        return out

    @classmethod
    def _rest(cls, data: Json) -> dict[str, Any]:
        """The keyword arguments that keep what ``data`` holds beyond the named fields, and
        its key order."""
        if not isinstance(data, dict):
            raise AsrfairError(f"not an asrfair report: expected an object, got {data!r:.60}")
        named = cls.json_names()
        extra = {k: v for k, v in data.items() if k not in named}
        return {"extra": extra, "keys": tuple(data)}


def _json_of(value: Any) -> Any:
    """A named field as JSON: records and entries by ``to_json``, containers walked."""
    if isinstance(value, Record | RateEntry):
        return value.to_json()
    if isinstance(value, list):
        return [_json_of(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_of(item) for key, item in value.items()}
    return value


@dataclass
class RateEntry:
    """The overall entry of a report: counts, rates (``RateCell``) and plugin fields.

    ``values`` keeps every field after the header in the order the metrics wrote it, so the
    JSON keeps its order too; which of them are rates is known from their type."""

    n_utterances: int
    n_speakers: int | None
    warnings: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def rates(self) -> dict[str, RateCell]:
        return {k: v for k, v in self.values.items() if isinstance(v, RateCell)}

    def rate(self, name: str) -> RateCell:
        """The rate ``name``, or an empty cell where this entry has none."""
        cell = self.values.get(name)
        return cell if isinstance(cell, RateCell) else RateCell(None)

    def paired(self, metric: str) -> PairedEntry | None:
        found = self.values.get(metric)
        return found if isinstance(found, PairedEntry) else None

    def header_json(self) -> Json:
        return {
            "n_utterances": self.n_utterances,
            "n_speakers": self.n_speakers,
            "warnings": list(self.warnings),
        }

    def to_json(self) -> Json:
        out = self.header_json()
        for name, value in self.values.items():
            if isinstance(value, RateCell):
                out.update(_cell_json(name, value))
            else:
                out[name] = value.to_json() if isinstance(value, PairedEntry) else value
        return out

    @staticmethod
    def _values(data: Json, rates: Collection[str], paired: bool) -> dict[str, Any]:
        """The fields after the header: declared or shaped rates as cells, paired results
        (a compare entry's ``wer`` object) as ``PairedEntry``, the rest as they are."""
        values: dict[str, Any] = {}
        skip = {"group", "n_utterances", "n_speakers", "warnings"}
        keys = list(data)
        for key, after in zip(keys, [*keys[1:], None], strict=True):
            value = data[key]
            if key in skip:
                continue
            if after == f"{key}_ci" and (key in rates or undeclared_rate(value, data[after])):
                values[key] = _cell(data, key)
                skip.add(after)
            elif paired and isinstance(value, dict):
                values[key] = PairedEntry.from_json(value)
            else:
                values[key] = value
        return values

    @classmethod
    def from_json(cls, data: Json, rates: Collection[str] = (), paired: bool = False) -> RateEntry:
        """``rates``: the fields that metrics declared as rates (``record_rate``)."""
        return cls(
            n_utterances=data["n_utterances"],
            n_speakers=data.get("n_speakers"),
            warnings=list(data.get("warnings", [])),
            values=cls._values(data, rates, paired),
        )


@dataclass
class GroupEntry(RateEntry):
    """One group's entry: a rate entry with its group label (``female``, ``female*teens``)."""

    group: str = ""

    def header_json(self) -> Json:
        return {"group": self.group, **super().header_json()}

    @classmethod
    def from_json(cls, data: Json, rates: Collection[str] = (), paired: bool = False) -> GroupEntry:
        entry = RateEntry.from_json(data, rates, paired)
        return cls(
            entry.n_utterances, entry.n_speakers, entry.warnings, entry.values, data["group"]
        )


def _groups_from_json(
    data: Json, rates: Collection[str] = (), paired: bool = False
) -> dict[str, list[GroupEntry]]:
    return {g: [GroupEntry.from_json(e, rates, paired) for e in es] for g, es in data.items()}


@dataclass
class PairedEntry(Record):
    """One metric of a paired comparison (``compare``): B - A on the same draws."""

    rate_a: float | None
    rate_b: float | None
    diff: RateCell
    p_b_better: float | None
    p_a_better: float | None = None
    p_tie: float | None = None

    CELLS = ("diff",)

    @classmethod
    def from_json(cls, data: Json) -> PairedEntry:
        rest = cls._rest(data)
        return cls(
            data.get("rate_a"),
            data.get("rate_b"),
            _cell(data, "diff"),
            data.get("p_b_better"),
            data.get("p_a_better"),
            data.get("p_tie"),
            **rest,
        )


@dataclass
class Gap(Record):
    """One gap between two groups of a grouping, for one metric (docs/json-schema.md, Gap)."""

    a: str
    b: str
    kind: str | None  # pair, vs-rest, vs-best, vs-ref, largest; None in the oldest files
    metric: str
    diff: RateCell
    ratio: RateCell
    p_value: float | None = None
    p_adjusted: float | None = None
    p_holm: float | None = None  # kept for older readers: p_adjusted under holm, else None
    warnings: list[str] = field(default_factory=list)

    CELLS = ("diff", "ratio")

    @property
    def adjusted(self) -> float | None:
        """The adjusted p-value; files older than ``p_adjusted`` have it as ``p_holm``."""
        return self.p_holm if self.p_adjusted is None else self.p_adjusted

    @property
    def label(self) -> str:
        return gap_text(self.kind, self.a, self.b)

    @classmethod
    def from_json(cls, data: Json) -> Gap:
        rest = cls._rest(data)
        return cls(
            data["a"],
            data["b"],
            data.get("kind"),
            data["metric"],
            _cell(data, "diff"),
            _cell(data, "ratio"),
            data.get("p_value"),
            data.get("p_adjusted"),
            data.get("p_holm"),
            list(data.get("warnings", [])),
            **rest,
        )


def gap_text(kind: str | None, a: str, b: str) -> str:
    """How a gap is named in tables and CSV: ``largest: a - b`` or ``a vs b``."""
    return f"largest: {a} - {b}" if kind == "largest" else f"{a} vs {b}"


def _gaps_from_json(data: Json) -> dict[str, list[Gap]]:
    return {g: [Gap.from_json(row) for row in rows] for g, rows in data.items()}


@dataclass
class Method(Record):
    """How the numbers were made (docs/json-schema.md, Method). Every field is optional: a
    compare report has no gap test, an inspect report only ``split``. Build one with
    ``Method.from_json`` so that it writes only the fields it was given."""

    resampling_unit: str | None = None
    interval: str | None = None
    draws: int | None = None
    seed: int | None = None
    confidence: float | None = None
    permutations: int | None = None
    p_adjust_family: str | None = None
    split: str | None = None
    speakers: str | None = None  # "unknown": every utterance counted as its own speaker

    @classmethod
    def from_json(cls, data: Json) -> Method:
        named = cls.json_names()
        return cls(**{k: v for k, v in data.items() if k in named}, **cls._rest(data))


def _about(data: Json) -> dict[str, Any]:
    """What every report body ends with: how it was made, its warnings, its options."""
    return {
        "method": Method.from_json(data.get("method", {})),
        "warnings": list(data.get("warnings", [])),
        "config": data.get("config", {}),
    }


@dataclass
class ScoreBody(Record):
    """A ``score`` report, and an ``audit`` one: the same with ``run`` (what was trained)."""

    overall: RateEntry
    groups: dict[str, list[GroupEntry]]
    gaps: dict[str, list[Gap]]
    gap_notes: dict[str, list[str]]
    method: Method
    dropped: dict[str, Any]
    warnings: list[str]
    config: dict[str, Any]
    run: dict[str, Any] | None = None
    # Metrics' own result tables (MetricContext.add_table): each a dict with title, metric,
    # columns, rows and notes. None where no metric added one.
    tables: list[Json] | None = None

    def named_json(self) -> Json:
        """As any record's, without ``run`` where there is none (a score, not an audit), and
        without ``tables`` where no metric wrote one."""
        return _without_none(super().named_json(), ("run", "tables"))

    @classmethod
    def from_json(cls, data: Json, rates: Collection[str] = ()) -> ScoreBody:
        """``rates``: the fields metrics declared as rates; a stored file declares none."""
        rest = cls._rest(data)
        return cls(
            RateEntry.from_json(data["overall"], rates),
            _groups_from_json(data["groups"], rates),
            _gaps_from_json(data.get("gaps", {})),
            data.get("gap_notes", {}),
            dropped=data.get("dropped", {}),
            run=data.get("run"),
            tables=data.get("tables"),
            **_about(data),
            **rest,
        )


def _without_none(out: Json, optional: tuple[str, ...]) -> Json:
    """Optional fields left out while None, so older documents keep their exact keys."""
    for name in optional:
        if out.get(name) is None:
            out.pop(name, None)
    return out


@dataclass
class CompareBody(Record):
    """A ``compare`` report: entries whose ``wer`` and ``cer`` are ``PairedEntry``."""

    systems: dict[str, Any]
    overall: RateEntry
    groups: dict[str, list[GroupEntry]]
    method: Method
    warnings: list[str]
    config: dict[str, Any]

    @classmethod
    def from_json(cls, data: Json) -> CompareBody:
        rest = cls._rest(data)
        return cls(
            data.get("systems", {}),
            RateEntry.from_json(data["overall"], paired=True),
            _groups_from_json(data["groups"], paired=True),
            **_about(data),
            **rest,
        )


@dataclass
class InspectBody(Record):
    """A dataset's sizes (``asrfair data inspect``): rows of utterances, speakers, hours."""

    dataset: str
    splits: list[dict[str, Any]]
    groups: dict[str, list[dict[str, Any]]]
    method: Method
    warnings: list[str]
    config: dict[str, Any]

    @classmethod
    def from_json(cls, data: Json) -> InspectBody:
        rest = cls._rest(data)
        return cls(data["dataset"], data["splits"], data["groups"], **_about(data), **rest)


@dataclass
class StudyRun(Record):
    """One run of a study: its training subset's size and its score entries and gaps."""

    name: str
    subset: str
    hparams: str
    subset_size: dict[str, list[dict[str, Any]]]
    subset_total: dict[str, Any]
    overall: RateEntry
    groups: dict[str, list[GroupEntry]]
    gaps: dict[str, list[Gap]]
    tables: list[Json] | None = None  # the run's metric tables (ScoreBody.tables)

    def named_json(self) -> Json:
        return _without_none(super().named_json(), ("tables",))

    @classmethod
    def from_json(cls, data: Json) -> StudyRun:
        rest = cls._rest(data)
        return cls(
            data["name"],
            data["subset"],
            data["hparams"],
            data.get("subset_size", {}),
            data.get("subset_total", {}),
            RateEntry.from_json(data["overall"]),
            _groups_from_json(data["groups"]),
            _gaps_from_json(data.get("gaps", {})),
            data.get("tables"),
            **rest,
        )


@dataclass
class StudyComparison(Record):
    """Two runs of a study on the same test set, compared pairwise (entries as in compare)."""

    a: str
    b: str
    hparams: str
    overall: RateEntry
    groups: dict[str, list[GroupEntry]]

    @classmethod
    def from_json(cls, data: Json) -> StudyComparison:
        rest = cls._rest(data)
        overall = RateEntry.from_json(data["overall"], paired=True)
        groups = _groups_from_json(data["groups"], paired=True)
        return cls(data["a"], data["b"], data.get("hparams", ""), overall, groups, **rest)


@dataclass
class StudyBody(Record):
    """A study (``study.json``): every run, and the paired comparisons between runs."""

    study: str
    runs: list[StudyRun]
    comparisons: list[StudyComparison]
    hparams: dict[str, Any]
    method: Method
    warnings: list[str]
    config: dict[str, Any]

    @classmethod
    def from_json(cls, data: Json) -> StudyBody:
        rest = cls._rest(data)
        return cls(
            data.get("study", ""),
            [StudyRun.from_json(r) for r in data["runs"]],
            [StudyComparison.from_json(c) for c in data.get("comparisons", [])],
            data.get("hparams", {}),
            **_about(data),
            **rest,
        )


ReportBody = ScoreBody | CompareBody | InspectBody | StudyBody

BODY_TYPES: dict[str, type[ScoreBody] | type[CompareBody] | type[InspectBody] | type[StudyBody]]
BODY_TYPES = {
    "score": ScoreBody,
    "audit": ScoreBody,
    "compare": CompareBody,
    "inspect": InspectBody,
    "study": StudyBody,
}


def body_from_json(kind: str, data: Json) -> ReportBody:
    """The typed body of a report of ``kind`` read from its JSON document."""
    if kind not in BODY_TYPES:
        raise AsrfairError(f"unknown report kind {kind!r}; known: {', '.join(BODY_TYPES)}")
    return BODY_TYPES[kind].from_json(data)
