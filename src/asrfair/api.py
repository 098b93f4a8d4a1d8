"""asrfair from Python: one call scores a DataFrame (or a file) and returns DataFrames.

Notebook users expect ``MetricFrame(...).by_group`` and jiwer's one function call; the CLI's
``asrfair score`` is this same function with its options parsed from the command line, so a
number printed in a terminal and one computed in a notebook come from one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.groups import parse_groupings
from asrfair.hfdata import is_hf_dataset, saved_for_audit
from asrfair.inputs import InputOptions, load_dataset_input, load_input
from asrfair.metrics import DEFAULT_METRICS, run_metrics
from asrfair.plugins import Plugins, installed
from asrfair.report import Report
from asrfair.runs import load_stored_report
from asrfair.scoring import ScoreTable
from asrfair.scoring import score as score_table
from asrfair.stats import StatsConfig, stats_config
from asrfair.text import Normalizer
from asrfair.transcripts import IDS_FROM_LINES, Columns, select_columns

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

# What score and compare read: a table in memory, a file, or an HF dataset (one split of it).
Data: TypeAlias = "pd.DataFrame | str | Path | Dataset | DatasetDict"


@dataclass(frozen=True)
class ScoreResult:
    """A scored table: tidy DataFrames for analysis, and the exports the CLI writes.

    Rates are fractions (0.463), as in the JSON; the printed reports show percentages.
    """

    report: Report
    plugins: Plugins = field(default_factory=installed, repr=False, compare=False)

    @property
    def overall(self) -> pd.Series | pd.DataFrame:
        """Corpus-level counts and rates, with ``<rate>_low``/``<rate>_high`` interval ends; for
        a study, a DataFrame with one such row per run (``run``, ``subset``, ``hparams`` first)."""
        if self.report.kind == "study":
            return pd.DataFrame(
                [{**_run_key(run), **_flatten(run["overall"])} for run in self._runs()]
            )
        return pd.Series(_flatten(self.report.data["overall"]))

    @property
    def by_group(self) -> pd.DataFrame:
        """One row per (grouping, group): sizes, rates and interval ends, and warnings (per run,
        for a study)."""
        return self._tidy("groups")

    @property
    def gaps(self) -> pd.DataFrame:
        """One row per gap between groups: difference, ratio, their intervals and p-values (per
        run, for a study)."""
        return self._tidy("gaps")

    @property
    def comparisons(self) -> pd.DataFrame:
        """A study's paired comparisons of runs, one row per (pair, grouping, group): B - A
        with its interval and P(B better). Empty for any other report."""
        rows = [
            {"a": pair["a"], "b": pair["b"], "hparams": pair.get("hparams"), **row}
            for pair in self.report.data.get("comparisons", [])
            for row in _entries({"overall": [pair["overall"]], **pair.get("groups", {})})
        ]
        return pd.DataFrame(rows)

    def _runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.report.data.get("runs", [])
        return runs

    def _tidy(self, section: str) -> pd.DataFrame:
        if self.report.kind == "study":
            return pd.DataFrame(
                [
                    {**_run_key(run), **row}
                    for run in self._runs()
                    for row in _entries(run.get(section, {}))
                ]
            )
        return pd.DataFrame(_entries(self.report.data.get(section, {})))

    @property
    def method(self) -> dict[str, Any]:
        method: dict[str, Any] = self.report.data["method"]
        return method

    @property
    def warnings(self) -> list[str]:
        """Every warning: the report's own, then each group's and gap's, named by where it
        applies ("accents=fr: only 8 speaker(s)..."), so that none hides in a table row."""
        found = list(self.report.data.get("warnings", []))
        for section in ("groups", "gaps"):
            for grouping, entries in self.report.data.get(section, {}).items():
                for entry in entries:
                    where = entry.get("group") or f"{entry.get('a')} vs {entry.get('b')}"
                    found += [f"{grouping}={where}: {w}" for w in entry.get("warnings", [])]
        return list(dict.fromkeys(found))

    def export(self, fmt: str) -> str:
        """Any exporter plugin's text (``json``, ``csv``, ``md``, ``latex``...)."""
        rendered = self.plugins.exporters().get(fmt, option="--format")(self.report)
        if not isinstance(rendered, str):
            raise TypeError(f"exporter {fmt!r} renders for a terminal; use rich's Console")
        return rendered

    def to_json(self) -> str:
        return self.export("json")

    def to_csv(self) -> str:
        return self.export("csv")

    def to_markdown(self) -> str:
        return self.export("md")

    def to_latex(self) -> str:
        return self.export("latex")

    def to_html(self) -> str:
        """The self-contained page of ``--format html``: summary, figure, tables, method."""
        return self.export("html")

    def plot(self, path: str | Path) -> Path:
        """Per-group WER and CER as points with their intervals, one panel per grouping; the
        suffix picks PNG, SVG or PDF. Returns the path written."""
        from asrfair.plots import plot_groups

        return plot_groups(self.report.data, Path(path))

    def __rich__(self) -> Any:
        return self.plugins.exporters().get("rich")(self.report)

    def _repr_html_(self) -> str:
        tables = "".join(
            f"<h4>{title}</h4>{frame.to_html(index=False)}"
            for title, frame in (("By group", self.by_group), ("Gaps", self.gaps))
            if not frame.empty
        )
        from html import escape

        from asrfair.report import method_sentence

        return f"{tables}<p><em>{escape(method_sentence(self.method))}</em></p>"


def _entries(sections: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``{grouping: [entry, ...]}`` as flat rows, each with its grouping."""
    return [
        {"grouping": grouping, **_flatten(entry)}
        for grouping, entries in sections.items()
        for entry in entries
    ]


def _run_key(run: dict[str, Any]) -> dict[str, Any]:
    return {"run": run.get("name"), "subset": run.get("subset"), "hparams": run.get("hparams")}


def _flatten(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``wer_ci: [low, high]`` becomes ``wer_low`` and ``wer_high``, a nested ``wer: {diff}``
    becomes ``wer_diff``, and lists of text are joined: one flat row per entry."""
    flat: dict[str, Any] = {}
    for raw_key, value in entry.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{key}_"))
        elif key.endswith("_ci") and (value is None or isinstance(value, list | tuple)):
            name = key.removesuffix("_ci")
            flat[f"{name}_low"], flat[f"{name}_high"] = [*(value or ()), None, None][:2]
        elif key == "warnings" and isinstance(value, list):
            flat[key] = "; ".join(map(str, value))
        else:
            flat[key] = value
    return flat


def score(
    data: Data,
    *,
    groups: str | Sequence[str] = (),
    ref: str = "ref",
    hyp: str = "hyp",
    id: str | None = None,
    speaker: str | None = None,
    normalizer: str = "none",
    metrics: Sequence[str] = DEFAULT_METRICS,
    bootstrap: int = 10_000,
    permutations: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    min_speakers: int = 10,
    interval: str = "auto",
    p_adjust: str = "holm",
    gaps: str = "auto",
    input_format: str = "auto",
    ref_file: str | Path | None = None,
    speaker_from_id: str = "spu_id",
    stm_labels: Sequence[str] = (),
    split: str | None = None,
    plugins: Plugins | None = None,
) -> ScoreResult:
    """WER/CER overall and per group, with speaker-level intervals and gap tests.

    ``data`` is a DataFrame or a path with one row per utterance: CSV, TSV, JSONL, a NeMo
    manifest (``.json``), Parquet, ``-`` for standard input, or a ``datasets.Dataset`` (of a
    ``DatasetDict``, the ``split`` named; a saved one is the path ``hf:FOLDER@SPLIT``). An HF
    dataset's ``text``/``sentence``... column is the reference and its ``speaker_id``,
    ``client_id`` or ``speaker`` the speaker, unless ``ref`` and ``speaker`` say otherwise
    (asrfair.hfdata lists the names in order). Kaldi, sclite ``trn`` and
    ``ctm`` hypotheses take their reference from ``ref_file`` (a Kaldi data directory, a
    ``.trn``, an ``.stm``); ``input_format`` overrides the suffix (see asrfair.inputs).
    Without a ``speaker`` column every utterance is its own speaker, and the report says so.
    ``plugins`` (default: the installed ones) resolves ``normalizer`` and ``metrics``; pass
    ``Plugins.with_builtins(MyPlugin())`` to try a plugin without installing it.
    """
    plugins = _plugins(plugins)
    chosen = plugins.chosen_metrics(_metric_names(metrics))
    groupings = parse_groupings(groups)
    columns = _columns(ref, hyp, id, speaker)
    options = _input_options(input_format, ref_file, speaker_from_id, stm_labels, split)
    table = _score(
        data,
        columns,
        groupings,
        plugins.normalizers().get(normalizer, option="--normalizer"),
        options,
    )
    cfg = stats_config(
        {
            "bootstrap": bootstrap,
            "permutations": permutations,
            "stats_seed": seed,
            "confidence": confidence,
            "min_speakers": min_speakers,
            "interval": interval,
            "p_adjust": p_adjust,
            "gaps": gaps,
        }
    )
    config = {
        "input": _name(data),
        **_input_config(options),
        "columns": _columns_dict(columns),
        "normalizer": normalizer,
        "groups": groupings,
    }
    return ScoreResult(run_metrics(table, cfg, chosen, config=config), plugins)


def compare(
    a: Data,
    b: Data,
    *,
    groups: str | Sequence[str] = (),
    ref: str = "ref",
    hyp: str = "hyp",
    id: str | None = None,
    speaker: str | None = None,
    normalizer: str = "none",
    pair_by_line: bool = False,
    bootstrap: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    min_speakers: int = 10,
    input_format: str = "auto",
    ref_file: str | Path | None = None,
    speaker_from_id: str = "spu_id",
    stm_labels: Sequence[str] = (),
    split: str | None = None,
    plugins: Plugins | None = None,
) -> ScoreResult:
    """System B against system A on the same utterances, paired by id: B - A per group with
    a paired speaker bootstrap, and P(B better). Groups and speakers are taken from A. Inputs
    are read as by ``score`` (``split`` for both); with ``ref_file``, A and B are two systems'
    outputs for it."""
    from asrfair.comparison import build_compare_report

    plugins = _plugins(plugins)
    normalize = plugins.normalizers().get(normalizer, option="--normalizer")
    groupings = parse_groupings(groups)
    columns = _columns(ref, hyp, id, speaker)
    options = _input_options(input_format, ref_file, speaker_from_id, stm_labels, split)
    tables = [
        _score(a, columns, groupings, normalize, options),
        _score(b, columns, [], normalize, options),
    ]
    for data, table in zip((a, b), tables, strict=True):
        if table.frame.attrs.get(IDS_FROM_LINES) and not pair_by_line:
            raise AsrfairError(
                f"{_name(data)} has no id column (--id-col {columns.id}): compare pairs "
                "utterances by id; add ids, or pass --pair-by-line if both list the same "
                "utterances in the same order"
            )
    config: dict[str, Any] = {
        "inputs": [_name(a), _name(b)],
        "systems": {"a": _name(a), "b": _name(b)},
        **_input_config(options),
        "columns": _columns_dict(columns),
        "normalizer": normalizer,
        "groups": groupings,
    }
    cfg = paired_stats(bootstrap, seed, confidence, min_speakers)
    return ScoreResult(build_compare_report(tables[0], tables[1], cfg, config=config), plugins)


def paired_stats(bootstrap: int, seed: int, confidence: float, min_speakers: int) -> StatsConfig:
    """The statistics of a paired comparison (files or run folders): a paired bootstrap,
    no permutation tests."""
    options = {"bootstrap": bootstrap, "permutations": 0, "stats_seed": seed}
    return stats_config(options | {"confidence": confidence, "min_speakers": min_speakers})


def audit(
    dataset: Any = None,
    *,
    model: str | None = None,
    train_subset: str | None = None,
    groups: str | Sequence[str] | None = None,
    out: str | Path | None = None,
    config: str | Path | None = None,
    plugins: Plugins | None = None,
    **options: Any,
) -> ScoreResult | None:
    """Fine-tune on a training subset, transcribe the fixed test set and score it per group:
    ``asrfair audit``, with the same options as keywords (``learning_rate=1e-4``,
    ``stats_seed=3``, ``no_train=True``...) and the same ``config`` file. Left out (or
    None), an option takes the config file's value, else its default. The run folder is
    written as the CLI writes it. Returns None on ranks other than 0 under ``torchrun``.
    """
    from asrfair.audit_options import resolve_audit
    from asrfair.pipeline import run_plan

    if is_hf_dataset(dataset):  # an in-memory Dataset: saved once, named by its fingerprint
        from asrfair.audio import default_cache_dir

        dataset = saved_for_audit(dataset, default_cache_dir().parent / "datasets")
    named: dict[str, Any] = {"dataset": dataset, "model": model, "train_subset": train_subset}
    named |= {"groups": groups, "out": out}
    given = {k: v for k, v in named.items() if v is not None} | options
    plugins = _plugins(plugins)
    where = "asrfair.audit()"
    plan = resolve_audit(
        given, config=Path(config) if config else None, where=where, plugins=plugins
    )
    report = run_plan(plan)
    return None if report is None else ScoreResult(report, plugins)


def load_run(path: str | Path, *, plugins: Plugins | None = None) -> ScoreResult:
    """A finished audit run or study folder, from its stored metrics; nothing is recomputed."""
    return ScoreResult(load_stored_report(Path(path)), _plugins(plugins))


def _columns(ref: str, hyp: str, id: str | None, speaker: str | None) -> Columns:
    explicit = frozenset(n for n, v in (("id", id), ("speaker", speaker)) if v is not None)
    return Columns(ref, hyp, id or "id", speaker or "speaker", explicit)


def _columns_dict(columns: Columns) -> dict[str, str]:
    return {"ref": columns.ref, "hyp": columns.hyp, "id": columns.id, "speaker": columns.speaker}


def _name(data: Data) -> str:
    """How a report's config names an input: a path as given, an object by its type."""
    if isinstance(data, pd.DataFrame):
        return "DataFrame"
    return f"datasets.{type(data).__name__}" if is_hf_dataset(data) else str(data)


def _input_options(
    input_format: str,
    ref_file: str | Path | None,
    speaker_from_id: str,
    stm_labels: Sequence[str],
    split: str | None = None,
) -> InputOptions:
    ref = Path(ref_file) if ref_file is not None else None
    return InputOptions(input_format, ref, speaker_from_id, tuple(stm_labels), split)


def _input_config(options: InputOptions) -> dict[str, str]:
    """A report read from a Kaldi, trn or stm/ctm input names its reference too, so that it
    says what was scored, and one split of an HF dataset its split; table inputs keep the
    config they always had."""
    config = {"split": options.split} if options.split is not None else {}
    if options.ref_file is None:
        return config
    return {"input_format": options.format, "reference": str(options.ref_file), **config}


def _plugins(plugins: Any) -> Plugins:
    """The plugin set handed in, else the installed one; anything else is a mistake to name."""
    if plugins is None:
        return installed()
    if not isinstance(plugins, Plugins):
        raise AsrfairError(
            f"plugins: give an asrfair Plugins set (asrfair.testing.with_plugins(...)), not "
            f"{type(plugins).__name__}"
        )
    return plugins


def _metric_names(metrics: Any) -> list[str]:
    """``"wer,cer"`` as the CLI writes it, or a list of names; at least one."""
    names = metrics.split(",") if isinstance(metrics, str) else metrics
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise AsrfairError(f"metrics: give metric names, e.g. ['wer', 'cer'], not {metrics!r}")
    chosen = [n.strip() for n in names if n.strip()]
    if not chosen:
        raise AsrfairError("metrics: name at least one metric, e.g. ['wer']")
    return chosen


def _score(
    data: Data,
    columns: Columns,
    groupings: list[str],
    normalize: Normalizer,
    options: InputOptions,
) -> ScoreTable:
    if isinstance(data, pd.DataFrame):
        frame = select_columns(data, columns, groupings, source="DataFrame")
    elif is_hf_dataset(data):
        frame = load_dataset_input(data, options.split, columns, groupings)
    elif isinstance(data, str | Path) and str(data):
        frame = load_input(Path(data), columns, groupings, options)
    else:
        raise AsrfairError(
            "data: give a pandas DataFrame, a datasets.Dataset or the path of a transcripts "
            f"file, not {type(data).__name__} {str(data)[:40]!r}"
        )
    return score_table(frame, normalize, groupings=groupings)
