"""The run folder on disk, owned by one module: its lock, its identity check, predictions
JSONL (read, resumed, merged across ranks), scores from stored predictions, the outputs writer,
and loading finished runs and stored reports.

Nothing here imports torch or transformers, so ``compare`` and ``report`` read a finished run
without paying for the model stack.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from asrfair import files
from asrfair.errors import AsrfairError, read_json
from asrfair.files import read_lines
from asrfair.groups import all_columns
from asrfair.hparams import without_settings
from asrfair.metrics import bad_value
from asrfair.registry import Registry
from asrfair.report import Exporter, Report, report_tables
from asrfair.scoring import COUNT_COLUMNS, DURATION_COLUMN, ScoreTable


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold a run folder for one process: two audits writing one folder would each append
    every prediction, and the run would count each utterance twice. The lock sits beside the
    folder (it must not make a new folder look non-empty) and names its holder. The path is
    resolved first, so a symlink to the folder takes the same lock."""
    out = out.resolve()
    if not out.name:
        raise AsrfairError(f"--out {out}: give a folder for the run, not the root")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_name(f".{out.name}.asrfair-lock")
    owner_path = lock_path.with_suffix(".owner")
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = owner_path.read_text(encoding="utf-8").strip() if owner_path.is_file() else "?"
        raise AsrfairError(
            f"--out {out} is in use by another asrfair process ({holder}); wait for it to "
            "finish, or choose another --out"
        ) from None
    try:
        owner_path.write_text(
            f"pid {os.getpid()} on {platform.node()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}",
            encoding="utf-8",
        )
        yield
    finally:
        owner_path.unlink(missing_ok=True)
        lock.release()


class StageTimes:
    """Seconds per stage, summed over every invocation of a run: a resumed run's report must
    not say ``train_s 0.0`` because this invocation found the model already trained. Each
    stage is added to ``timings.json`` as it ends, an interrupted one too: its work is kept
    (checkpoints, predictions) and a resume goes on from it, so its time was spent on the run."""

    def __init__(self, out: Path, *, enabled: bool = True) -> None:
        self.path, self.enabled = out / "timings.json", enabled
        fix = "delete it to restart the count"
        stored = read_json(self.path, fix) if self.path.is_file() else {"invocations": []}
        runs = stored.get("invocations") if isinstance(stored, dict) else None
        valid = isinstance(runs, list) and all(
            isinstance(r, dict) and all(isinstance(v, int | float) for v in r.values())
            for r in runs
        )
        if not valid or not isinstance(runs, list):
            raise AsrfairError(f"{self.path}: not a list of stage timings; {fix}")
        self.runs: list[dict[str, float]] = [*runs, {}]

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            with suppress(OSError, AsrfairError):  # never hide why the stage stopped
                self._record(name, start)
            raise
        self._record(name, start)

    def _record(self, name: str, start: float) -> None:
        self.runs[-1][name] = round(time.perf_counter() - start, 2)
        if self.enabled:
            files.write_json(self.path, {"invocations": self.runs})

    def totals(self) -> dict[str, float]:
        names = dict.fromkeys(k for run in self.runs for k in run)
        totals: dict[str, float] = {
            n: round(sum(r.get(n, 0.0) for r in self.runs), 2) for n in names
        }
        totals["invocations"] = len(self.runs)
        return totals


def check_run_dir(
    out: Path, identity: dict[str, Any], resume: bool, defaults: dict[str, Any] | None = None
) -> None:
    """Refuse to mix two configurations in one folder; ``--resume`` continues a matching one.
    ``defaults`` (the identity of default options) fills options a stored run predates."""
    config_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise AsrfairError(f"--out {out} is a file; give a folder for the run")
    if not config_path.is_file():
        if out.exists() and any(out.iterdir()) and not resume:
            raise AsrfairError(
                f"--out {out} exists and is not an asrfair run; choose another --out"
            )
        return
    config = read_json(config_path, "remove the folder, or choose another --out")
    stored = stored_options(config, defaults)
    current = json.loads(json.dumps(identity))
    if not resume:
        raise AsrfairError(
            f"--out {out} already holds a run; add --resume to continue it, or choose another --out"
        )
    differs = _differences(stored, current)
    if differs:
        shown = "; ".join(differs[:5]) + ("; ..." if len(differs) > 5 else "")
        raise AsrfairError(
            f"{out} was made with other options (stored -> now: {shown}); run it with the "
            "stored options, or write the new run to another folder"
        )


BUNDLED_MODEL = "asrfair:demo-model"


def portable_model(model: str) -> str:
    """The bundled demo checkpoint by name, not by where this checkout or install keeps it, so
    that a run folder (or a study) still matches its options after the project moves."""
    return BUNDLED_MODEL if Path(model).parts[-3:] == ("asrfair", "demo", "model") else model


def _differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """``train.warmup_steps 20 -> 10``: each option that differs, down to the nested field."""
    if isinstance(stored, dict) and isinstance(current, dict):
        keys = sorted(set(stored) | set(current))
        return [
            d for k in keys for d in _differences(stored.get(k), current.get(k), f"{prefix}{k}.")
        ]
    if stored == current:
        return []
    return [f"{prefix.rstrip('.')} {json.dumps(stored)} -> {json.dumps(current)}"]


def stored_options(config: Any, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity options of a config.json. A run written before the seeds were separated
    stored one ``seed`` that drew its split (and subset; its training seed is ``train.seed``):
    it reads as ``split_seed``, so such a run still resumes and re-scores. Training settings
    stored in its ``train`` table (``save_total_limit``...) are not compared. An option added
    since the run was made (``adapter``, ``language``...) reads as its value in ``defaults``:
    the run was made as if it had been left at its default."""
    options = config.get("options") if isinstance(config, dict) else None
    options = dict(options) if isinstance(options, dict) else {}
    if "seed" in options and "split_seed" not in options:
        options["split_seed"] = options.pop("seed")
    if isinstance(options.get("model"), str):
        options["model"] = portable_model(options["model"])
    if isinstance(options.get("train"), dict):  # stored when they were part of the identity
        options["train"] = without_settings(options["train"])
    return _with_defaults(options, json.loads(json.dumps(defaults or {})))


def _with_defaults(stored: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with each key it lacks taken from ``defaults``, down nested tables."""
    out = dict(stored)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _with_defaults(out[key], value)
    return out


def rank_files(out: Path) -> list[Path]:
    """Every rank's predictions file in a run folder, of this world size or an earlier one."""
    return sorted(out.glob("predictions.rank*.jsonl"))


def finished_ids(out: Path) -> set[str]:
    """Ids transcribed in any predictions file of the run: merged, or any rank's."""
    return set().union(*(done_ids(p) for p in [out / "predictions.jsonl", *rank_files(out)]))


def check_coverage(path: Path, expected: set[str]) -> None:
    """After the ranks merge, every test utterance has its prediction: a gap (a rank that
    died, a plan that skipped clips) must stop the report, not shrink its test set."""
    missing = sorted(expected - done_ids(path))
    if missing:
        raise AsrfairError(
            f"{path}: {len(missing):,} of {len(expected):,} test utterances have no prediction "
            f"(first: {missing[0]!r}); run the same audit again with --resume to transcribe them"
        )


def merge_shards(out: Path) -> None:
    """Fold every rank's predictions (of any world size) into predictions.jsonl, first record
    per id kept; the merged file replaces the old one whole, so a failure leaves both it and
    the shards."""
    merged = out / "predictions.jsonl"
    shards = rank_files(out)
    lines = read_lines(merged) if merged.is_file() else []
    seen = {i for i in map(_line_id, lines) if i is not None}
    for shard in (s for s in shards if s.is_file()):
        for record in iter_records(shard):
            if record["id"] not in seen:
                seen.add(record["id"])
                lines.append(json.dumps(record, ensure_ascii=False))
    files.write_text(merged, "".join(f"{line}\n" for line in lines if line.strip()))
    for shard in shards:
        shard.unlink(missing_ok=True)


def score_predictions(
    path: Path, groups: tuple[str, ...], test_ids: set[str] | None = None
) -> ScoreTable:
    """The ScoreTable of a run, from its predictions.jsonl alone (counts were stored there).

    With ``test_ids``, predictions of utterances outside the test split (a clip that became
    unreadable before a ``--resume``) are left out and counted in ``table.notes``.
    """
    records = pd.DataFrame(list(iter_records(path)))
    columns = ["id", "speaker", "ref", "hyp", *all_columns(groups), *COUNT_COLUMNS]
    missing = [c for c in columns if c not in records.columns]
    if missing:
        raise AsrfairError(f"{path}: predictions lack {', '.join(missing)}; rerun the audit")
    records["id"] = records["id"].astype(str)
    repeated = records["id"][records["id"].duplicated()]
    if not repeated.empty:
        raise AsrfairError(
            f"{path}: utterance {repeated.iloc[0]!r} is predicted more than once "
            f"({repeated.nunique():,} such ids), so every rate would count it twice; rerun the "
            "audit with a new --out"
        )
    counts = records[list(COUNT_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    if counts.isna().any().any() or (counts < 0).any().any():
        row = int(np.flatnonzero((counts.isna() | (counts < 0)).any(axis=1))[0])
        raise AsrfairError(
            f"{path}: the counts of utterance {records['id'].iloc[row]!r} are not non-negative "
            "numbers; the predictions file is damaged: delete that line and rerun with --resume"
        )
    records[list(COUNT_COLUMNS)] = counts.astype(np.int64)
    notes = []
    if test_ids is not None:
        outside = ~records["id"].isin(test_ids)
        if outside.any():
            notes.append(
                f"left out {int(outside.sum()):,} prediction(s) of utterances no longer in the "
                f"test split (e.g. {records['id'][outside].iloc[0]}; a clip that became "
                "unreadable is skipped)"
            )
            records = records.loc[~outside]
    extra = [DURATION_COLUMN] if DURATION_COLUMN in records.columns else []  # older runs lack it
    frame = records[columns + extra].sort_values("id").reset_index(drop=True)
    return ScoreTable(frame, tuple(groups), tuple(notes))


def done_ids(path: Path) -> set[str]:
    """Ids already in a predictions file; a half-written last line is ignored."""
    if not path.is_file():
        return set()
    return {i for i in map(_line_id, read_lines(path)) if i is not None}


def _line_id(line: str) -> str | None:
    """The id of one predictions line, or None for a half-written or foreign line."""
    try:
        return str(json.loads(line)["id"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def drop_partial_line(path: Path) -> None:
    """A run killed mid-write leaves a line without its newline; cut it before appending."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a predictions file; a damaged line is a one-line error naming it."""
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AsrfairError(
                f"{path}, line {number}: not valid JSON ({exc.msg}); the predictions file is "
                "damaged: delete that line and rerun with --resume"
            ) from None
        if not isinstance(record, dict) or "id" not in record:
            raise AsrfairError(
                f"{path}, line {number}: not a prediction record; delete that line and rerun "
                "with --resume"
            )
        yield record


def load_run(folder: Path) -> tuple[ScoreTable, dict[str, Any]]:
    """A finished audit run's ScoreTable and config; a half-written folder says what is missing."""
    missing = [
        n
        for n in ("config.json", "predictions.jsonl", "splits/test.txt")
        if not (folder / n).is_file()
    ]
    if missing:
        raise AsrfairError(f"{folder}: not a finished asrfair run; missing {', '.join(missing)}")
    config = read_json(folder / "config.json", "the run folder is damaged; rerun the audit")
    options = config.get("options") if isinstance(config, dict) else None
    if not isinstance(options, dict) or not isinstance(options.get("groups"), list):
        raise AsrfairError(
            f"{folder / 'config.json'}: no options.groups; the run folder is damaged, rerun "
            "the audit"
        )
    expected = set((folder / "splits" / "test.txt").read_text(encoding="utf-8").split())
    table = score_predictions(folder / "predictions.jsonl", tuple(options["groups"]), expected)
    have = set(table.frame["id"])
    if have != expected:
        raise AsrfairError(
            f"{folder}: predictions.jsonl covers {len(have):,} of {len(expected):,} test "
            "utterances; finish it with asrfair audit --resume"
        )
    return table, config


def load_stored_report(path: Path) -> Report:
    """A finished study (study.json) or run (metrics.json); else say what is missing."""
    if (path / "study.json").is_file():
        fix = "run the study again to rewrite it"
        data = read_json(path / "study.json", fix)
        _require(data, ("runs", "method"), path / "study.json", fix)
        return _checked(lambda: Report("study", data), path / "study.json", fix)
    if (path / "metrics.json").is_file():
        fix = f"rewrite it with asrfair audit --resume --out {path}"
        data = read_json(path / "metrics.json", fix)
        _require(data, ("overall", "groups", "method"), path / "metrics.json", fix)
        kind = "audit" if "run" in data else "score"
        return _checked(lambda: Report(kind, data), path / "metrics.json", fix)
    if not path.is_dir():
        raise AsrfairError(f"{path}: no such run or study folder")
    have = {p.name for p in path.iterdir()}
    expected = ["config.json", "splits", "model", "predictions.jsonl", "metrics.json"]
    missing = [n for n in expected if n not in have]
    raise AsrfairError(
        f"{path}: no metrics.json or study.json, so nothing to report; missing: "
        f"{', '.join(missing)}. Finish the run with asrfair audit --resume --out {path}"
    )


def _checked(make: Callable[[], Report], path: Path, fix: str) -> Report:
    """A stored report that asrfair can read and lay out; a hand-edited or damaged one is a
    one-line error naming the file, never a traceback from deep inside a renderer."""
    try:
        report = make()
        report_tables(report)
    except AsrfairError as exc:
        raise AsrfairError(f"{path}: {exc}; {fix}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise AsrfairError(f"{path}: damaged or edited by hand ({what}); {fix}") from None
    for key, value, problem in _problems(report.data):
        raise AsrfairError(f"{path}: {key} = {value!r}: {problem}; {fix}")
    return report


def _problems(data: Any) -> Iterator[tuple[str, Any, str]]:
    """Every value of a stored report that a metric could not have written (bad_value)."""
    if isinstance(data, dict):
        for key, value in data.items():
            problem = bad_value(str(key), value, data)
            if problem:
                yield str(key), value, problem
            if isinstance(value, dict | list):
                yield from _problems(value)
    elif isinstance(data, list):
        for value in data:
            yield from _problems(value)


def _require(data: Any, keys: tuple[str, ...], path: Path, fix: str) -> None:
    """A stored report must have its top-level sections; an edited or foreign JSON file is a
    one-line error, not a KeyError while rendering (or an empty report that exits 0)."""
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise AsrfairError(f"{path}: not an asrfair report (no {', '.join(missing)}); {fix}")


# The exporters whose text a run folder keeps, as report.SUFFIX (report.html: the page).
REPORT_FILES = (("md", "md"), ("latex", "tex"), ("csv", "csv"), ("html", "html"))


def write_outputs(report: Report, out: Path, exporters: Registry[Exporter]) -> None:
    files.write_json(out / "metrics.json", report.data)
    for name, suffix in REPORT_FILES:
        rendered = exporters.get(name)(report)
        if isinstance(rendered, str):
            files.write_text(out / f"report.{suffix}", rendered)
