"""``asrfair study``: every (training subset x hyper-parameter set) as an audit run, then one
table of all of them and a table of paired comparisons, on one fixed test set.

This is the question of the lab notebook asrfair grew from (which hyper-parameters, and does
training on one gender hurt the other?) asked properly: all runs share the split,
so their numbers are comparable, and differences between runs are tested pairwise on the same
speakers instead of eyeballed from separate intervals.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from asrfair import __version__, files
from asrfair.audit_options import AUDIT_OPTIONS, SECTIONS, SEEDS, AuditOptions, RunSettings, typed
from asrfair.errors import AsrfairError
from asrfair.files import read_toml
from asrfair.groups import parse_groupings
from asrfair.hparams import TrainConfig
from asrfair.metrics import DEFAULT_METRICS
from asrfair.plugins import Plugins
from asrfair.registry import Registry
from asrfair.report import Exporter, Report
from asrfair.runs import REPORT_FILES, run_lock, stored_options
from asrfair.stats import StatsConfig, stats_config

STUDY_KEYS = {
    "name": str,
    "dataset": str,
    "model": str,
    "split": str,
    "test_fraction": float,
    "groups": list,
    "subsets": list,
    "seed": int,
    "split_seed": int,
    "train_seed": int,
    "stats_seed": int,
    "normalizer": str,
    "min_seconds": float,
    "max_seconds": float,
    "compare": list,
    "device": str,
    "batch_seconds": float,
    "columns": str,
    "metrics": list,
}
TOP_KEYS = ("study", "statistics", "hparams")


@dataclass(frozen=True)
class Study:
    name: str
    options: dict[str, Any]  # AuditOptions fields except train/train_subset
    subsets: list[str]
    hparams: dict[str, TrainConfig]
    stats: StatsConfig
    compare: list[tuple[str, str]]
    device: str = "auto"
    batch_seconds: float | None = None  # None: the device's default (infer.default_batch_seconds)
    source: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = DEFAULT_METRICS  # with their options (regression:reference=x)

    def run_names(self) -> list[tuple[str, str, str]]:
        """(run folder name, subset, hyper-parameter set) for every combination, in order."""
        return [
            (run_name(subset, hp), subset, hp) for hp in self.hparams for subset in self.subsets
        ]


def run_name(subset: str, hparams: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{subset}--{hparams}")


def _table(where: str, value: Any) -> dict[str, Any]:
    """A TOML table, or a one-line error (``statistics = 5`` is not one)."""
    if not isinstance(value, dict):
        raise AsrfairError(f"{where}: must be a table of keys, not {value!r}")
    return value


def _check_keys(where: str, table: dict[str, Any], valid: list[str]) -> None:
    for key in table:
        if key not in valid:
            raise AsrfairError(
                f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(valid))}"
            )


def _train_config(path: Path, name: str, table: dict[str, Any], seed: int) -> TrainConfig:
    """One [hparams.NAME] table; without its own ``seed`` it trains with the study's."""
    where = f"{path} [hparams.{name}]"
    kinds = {f.name: type(f.default) for f in fields(TrainConfig)}
    _check_keys(where, _table(where, table), list(kinds))
    values = {k: typed(where, k, v, kinds[k]) for k, v in table.items()}
    try:
        return replace(TrainConfig(seed=seed), **values)
    except AsrfairError as exc:  # TrainConfig's own limits, named with the table
        raise AsrfairError(f"{where}: {exc}") from None


def load_study(path: Path, plugins: Plugins) -> Study:
    """Read and check a study file; every mistake names the table and key."""
    raw = read_toml(path, str(path), "the study file (TOML), e.g. examples/*.toml")
    _check_keys(str(path), raw, list(TOP_KEYS))
    study = _table(f"{path} [study]", raw.get("study", {}))
    _check_keys(f"{path} [study]", study, list(STUDY_KEYS))
    study = {k: typed(f"{path} [study]", k, v, STUDY_KEYS[k]) for k, v in study.items()}
    seeds = _seeds(path, study)
    stats = _stats_config(path, raw.get("statistics", {}), seeds["stats_seed"])
    hparams_raw = raw.get("hparams") or {"default": {}}
    hparams_raw = _table(f"{path} [hparams]", hparams_raw)
    hparams = {n: _train_config(path, n, t, seeds["train_seed"]) for n, t in hparams_raw.items()}
    subsets = [str(s) for s in study.pop("subsets", ["all"])]
    for subset in subsets:
        plugins.selector(subset, option=f"{path} [study] subsets")
    metrics = tuple(str(m).strip() for m in study.pop("metrics", DEFAULT_METRICS))
    plugins.chosen_metrics(metrics)  # a typo fails here, before any run
    compare = [tuple(pair) for pair in study.pop("compare", [])]
    for pair in compare:
        if len(pair) != 2 or any(p not in subsets for p in pair):
            raise AsrfairError(
                f"{path} [study] compare: {list(pair)} must name two of the subsets {subsets}"
            )
    ignored = ("name", "device", "batch_seconds", *SEEDS, "seed")
    options = {k: v for k, v in study.items() if k not in ignored}
    options["split_seed"] = seeds["split_seed"]
    if "groups" in options:
        options["groups"] = tuple(parse_groupings([str(g) for g in options["groups"]]))
    return Study(
        name=study.get("name", path.stem),
        options=options,
        subsets=subsets,
        hparams=hparams,
        stats=stats,
        compare=[(str(a), str(b)) for a, b in compare],
        device=study.get("device", "auto"),
        batch_seconds=study.get("batch_seconds"),
        source=raw,
        metrics=metrics,
    )


def run_study(
    study: Study, out: Path, plugins: Plugins, *, progress: bool = True, gather_only: bool = False
) -> Report:
    """Run (or reuse, or resume) every combination, then build the combined report.

    The study folder is held for the whole call, so two gathers never write its tables at once;
    runs started on their own (``--run``) hold only their run folder, and run beside this.
    With ``gather_only``, an unfinished run is an error instead of being run here: a job that
    gathers after a job array must not quietly fine-tune what a failed array task left."""
    if gather_only:  # before anything is written: a finished run stays finished
        _require_finished(study, out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        runs = [run_one(study, out, run, plugins, progress=progress) for run in study.run_names()]
        _same_test_set(out, [r["name"] for r in runs])
        return build_study_report(study, out, runs)


def run_one(
    study: Study, out: Path, run: tuple[str, str, str], plugins: Plugins, *, progress: bool = True
) -> dict[str, Any]:
    """One run of the grid, reused when finished and resumed when not; its row of the study.

    The audit takes the run folder's lock, so a second process on the same run stops with a
    one-line error naming the holder instead of appending every prediction twice."""
    from asrfair.pipeline import run_audit

    name, subset, hp = run
    run_dir, options = out / "runs" / name, _run_options(study, subset, hp)
    if not _finished(run_dir, options, study.stats, study.metrics):
        settings = RunSettings(
            out=run_dir,
            resume=run_dir.exists(),
            device=study.device,
            batch_seconds=study.batch_seconds,
            stats=study.stats,
            metrics=study.metrics,
            progress=progress,
            plugins=plugins,
        )
        run_audit(options, settings)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"name": name, "subset": subset, "hparams": hp, "metrics": metrics}


def _run_options(study: Study, subset: str, hp: str) -> AuditOptions:
    """The audit options of one run: the study's, with its training subset and hparams."""
    return AuditOptions(**study.options, train_subset=subset, train=study.hparams[hp])


def _require_finished(study: Study, out: Path) -> None:
    """Name every run that ``--gather-only`` cannot use, and how to finish them."""
    unfinished = [
        name
        for name, subset, hp in study.run_names()
        if not _finished(
            out / "runs" / name, _run_options(study, subset, hp), study.stats, study.metrics
        )
    ]
    if unfinished:
        total = len(study.run_names())
        raise AsrfairError(
            f"--gather-only: {len(unfinished)} of {total} runs of study {study.name!r} are not "
            f"finished with its options ({', '.join(unfinished)}); run each with --run NAME "
            "(see --plan), or drop --gather-only to run them in this process"
        )


def pick_run(study: Study, name: str | None, index: int | None) -> tuple[str, str, str]:
    """The run that ``--run NAME`` or ``--index I`` (0-based, a job array's task id) names."""
    runs = study.run_names()
    names = [r[0] for r in runs]
    if index is not None:
        if not 0 <= index < len(runs):
            raise AsrfairError(
                f"--index {index}: study {study.name!r} has {len(runs)} runs, so give 0 to "
                f"{len(runs) - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(names))})"
            )
        return runs[index]
    if name not in names:
        raise AsrfairError(
            f"--run {name}: study {study.name!r} has no such run; valid runs: {', '.join(names)}"
        )
    return runs[names.index(name)]


def plan(study: Study, file: Path, out: Path | None) -> list[dict[str, Any]]:
    """One entry per run, in ``--index`` order, with the shell command that runs it alone.

    Paths are absolute and quoted, so a line pasted into a job script or another shell (another
    working folder, a path with spaces) runs the same run of the same study folder."""
    base = ["asrfair", "study", str(file.resolve())]
    if out is not None:
        base += ["--out", str(out.resolve())]
    return [
        {
            "index": index,
            "name": name,
            "subset": subset,
            "hparams": hp,
            "command": shlex.join([*base, "--run", name]),
        }
        for index, (name, subset, hp) in enumerate(study.run_names())
    ]


def _finished(
    run_dir: Path, options: Any, stats: StatsConfig, metrics: tuple[str, ...] = DEFAULT_METRICS
) -> bool:
    """A run is reused when its metrics exist and were made with the study's options,
    statistics and metrics; with other statistics or metrics it is resumed, which scores its
    stored predictions again (no training, no inference) instead of reporting numbers of
    another method."""
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "config.json").is_file():
        return False
    stored = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    defaults = options.default_identity()
    same_options = stored_options(stored, defaults) == json.loads(json.dumps(options.identity()))
    same_stats = stored.get("settings", {}).get("stats") == json.loads(json.dumps(asdict(stats)))
    same_metrics = stored.get("settings", {}).get("metrics", list(DEFAULT_METRICS)) == list(metrics)
    return bool(same_options and same_stats and same_metrics)


def _same_test_set(out: Path, names: list[str]) -> None:
    first = None
    for name in names:
        ids = (out / "runs" / name / "splits" / "test.txt").read_text(encoding="utf-8").split()
        if first is None:
            first = (name, set(ids))
        elif set(ids) != first[1]:
            extra = sorted(set(ids) ^ first[1])[:3]
            raise AsrfairError(
                f"runs {first[0]!r} and {name!r} have different test sets "
                f"(e.g. {', '.join(extra)}); a study must compare runs on one test set"
            )


def build_study_report(study: Study, out: Path, runs: list[dict[str, Any]]) -> Report:
    from asrfair.comparison import compare_runs

    comparisons = []
    pairs = study.compare or _default_pairs(study.subsets)
    for hp in study.hparams:
        for a, b in pairs:
            report = compare_runs(
                out / "runs" / run_name(a, hp), out / "runs" / run_name(b, hp), study.stats
            )
            comparisons.append(
                {
                    "a": run_name(a, hp),
                    "b": run_name(b, hp),
                    "hparams": hp,
                    "overall": report.data["overall"],
                    "groups": report.data["groups"],
                }
            )
    data = {
        "study": study.name,
        "runs": [_run_row(r) for r in runs],
        "comparisons": comparisons,
        "hparams": {name: cfg.as_dict() for name, cfg in study.hparams.items()},
        "method": runs[0]["metrics"]["method"] if runs else {},
        "warnings": [],
        "config": {"asrfair_version": __version__, "study": study.source},
    }
    return Report("study", data)


def _default_pairs(subsets: list[str]) -> list[tuple[str, str]]:
    """male against female when both are there, else every subset against the first."""
    if "male" in subsets and "female" in subsets:
        return [("male", "female")]
    return [(subsets[0], s) for s in subsets[1:]]


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    metrics = run["metrics"]
    return {
        "name": run["name"],
        "subset": run["subset"],
        "hparams": run["hparams"],
        "subset_size": metrics["run"]["subset_size"],
        "subset_total": metrics["run"]["subset_total"],
        "overall": metrics["overall"],
        "groups": metrics["groups"],
        "gaps": metrics["gaps"],
        **({"tables": metrics["tables"]} if "tables" in metrics else {}),
    }


def write_study_outputs(report: Report, folder: Path, exporters: Registry[Exporter]) -> list[Path]:
    """study.json (the data), study.md/.tex/.csv, the page report.html, and the plots; runs get
    their own plots."""
    folder.mkdir(parents=True, exist_ok=True)
    files.write_json(folder / "study.json", report.data)
    written = [folder / "study.json"]
    for name, suffix in REPORT_FILES:
        # The page is report.html in a study folder as in a run folder: the file to open.
        target = folder / f"{'report' if name == 'html' else 'study'}.{suffix}"
        rendered = exporters.get(name)(report)
        if isinstance(rendered, str):
            files.write_text(target, rendered)
            written.append(target)
    return written + write_plots(report, folder)


def write_plots(report: Report, folder: Path) -> list[Path]:
    from asrfair.plots import plot_gap_forest, plot_run_groups

    if report.kind == "study":
        written = plot_gap_forest(report.data, folder / "gap_forest")
        for run in report.data["runs"]:
            run_dir = folder / "runs" / run["name"]
            if run_dir.is_dir():
                with_method = {**run, "method": report.data["method"]}
                written += plot_run_groups(with_method, run_dir / "group_wer")
        return written
    return plot_run_groups(report.data, folder / "group_wer")


def _seeds(path: Path, study: dict[str, Any]) -> dict[str, int]:
    """[study] ``seed`` sets the split, training and statistics seeds; ``split_seed``,
    ``train_seed`` and ``stats_seed`` override it (as ``--seed`` and its three options do)."""
    seed = study.get("seed", 0)
    seeds = {name: study.get(name, seed) for name in SEEDS}
    for name, value in seeds.items():
        if value < 0:
            raise AsrfairError(f"{path} [study]: {name} {value}: use a seed of 0 or more")
    return seeds


def _stats_config(path: Path, raw: Any, seed: int) -> StatsConfig:
    """The [statistics] table, keyed as the audit's options, as a StatsConfig; a bad value
    names the file and the key."""
    where = f"{path} [statistics]"
    table = _table(where, raw)
    _check_keys(where, table, [k for k in SECTIONS["statistics"] if k != "seed"])
    values = {k: typed(where, k, v, AUDIT_OPTIONS[k].kind) for k, v in table.items()}
    return stats_config({**values, "stats_seed": seed}, where=where)
