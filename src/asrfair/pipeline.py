"""One audit run (``asrfair audit``, ``asrfair.audit()``): prepare, split, select the
subset, fine-tune, transcribe, score, report. (Named ``pipeline`` so that ``asrfair.audit``
stays the API function rather than a submodule.)

Everything is written into the run directory as it is produced (config, splits,
model, predictions, metrics, reports), so an interrupted run resumes with
``--resume`` and a finished one can be re-rendered or checked later. Under
``torchrun``/``accelerate launch`` every rank trains and transcribes its shard;
rank 0 alone writes the directory.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from asrfair import __version__, files
from asrfair.audio import AudioSettings, prepare_audio, use_cache_dir
from asrfair.audit_options import AuditOptions, AuditPlan, RunSettings
from asrfair.corpus import Corpus, parse_columns
from asrfair.errors import AsrfairError
from asrfair.groups import all_columns
from asrfair.infer import (
    Clip,
    default_batch_seconds,
    default_workers,
    pick_device,
    transcribe_to_file,
)
from asrfair.metadata import prepare_metadata, size_summary
from asrfair.metrics import Metric, run_metrics
from asrfair.models import (
    CTC,
    ModelChoice,
    check_choice,
    input_window_seconds,
    inspect_model,
    load_processor,
    load_transcriber,
    model_load_error,
)
from asrfair.ranks import agree_min, start_monitoring, wait_for_ranks
from asrfair.report import Report
from asrfair.report_model import ScoreBody
from asrfair.runs import (
    StageTimes,
    check_coverage,
    check_run_dir,
    finished_ids,
    merge_shards,
    portable_model,
    rank_files,
    run_lock,
    score_predictions,
    write_outputs,
)
from asrfair.scoring import COUNT_COLUMNS, DURATION_COLUMN, utterance_counts
from asrfair.split import Split, check_split, make_split, write_split
from asrfair.subsets import Selector, select_subset
from asrfair.text import Normalizer, for_checkpoint
from asrfair.train import (
    choose_vocab,
    fine_tune,
    hold_out,
    load_model,
    training_processor,
    training_table,
    unknown_characters,
)
from asrfair.trainer_metrics import GroupWER


def quiet_libraries() -> None:
    """transformers and datasets print their own bars and notices; asrfair shows one progress."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def versions() -> dict[str, str]:
    import datasets
    import torch
    import transformers

    return {
        "asrfair": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "python": platform.python_version(),
    }


def group_sizes(frame: pd.DataFrame, groups: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Utterances, speakers and hours per group: the training subset's size, for the report."""
    from asrfair.groups import group_labels

    out: dict[str, list[dict[str, Any]]] = {}
    for grouping in groups:
        labels = group_labels(frame, grouping)
        names = sorted(labels.dropna().unique())
        out[grouping] = [{"group": str(n)} | size_summary(frame[labels == n]) for n in names]
    return out


@dataclass
class Resolved:
    """The run's plugin names, looked up once in the preflight and handed to the stages."""

    corpus: Corpus
    selector: Selector
    metrics: dict[str, Metric]
    normalize: Normalizer  # of references, and of every model's transcripts


@dataclass
class RunData:
    """What the stages after the data stage share: clips with audio, the split, the subset."""

    corpus: Corpus
    frame: pd.DataFrame  # corpus rows with audio, plus cache/n_samples/seconds
    split: Split
    subset: pd.DataFrame
    notes: list[str]
    metrics: dict[str, Metric]
    normalize: Normalizer


def preflight(options: AuditOptions, settings: RunSettings) -> Resolved:
    """Every check that needs no audio, done before the run folder or the cache is touched:
    a typo in --train-subset or --model must not cost an audio preparation, nor leave a
    config.json behind that makes the same --out refuse the corrected command."""
    chosen = settings.plugins
    metrics = chosen.chosen_metrics(settings.metrics)
    check_split(options.split, options.test_fraction)
    model = options.resolved_model()
    check_model(options)
    normalize = for_checkpoint(
        chosen.normalizers().get(options.normalizer, option="--normalizer"), model
    )
    corpus = prepare_metadata(
        options.dataset,
        normalize,
        list(options.groups),
        parse_columns(options.columns),
        datasets=chosen.datasets(),
    )
    selector = chosen.selector(options.train_subset)
    select_subset(corpus.frame, selector, options.train_subset, seed=options.train.seed)
    # A split with no test side must fail here, before the run folder and the audio.
    make_split(
        corpus.frame,
        options.split,
        test_fraction=options.test_fraction,
        seed=options.split_seed,
        stratify=list(options.groups),
    )
    return Resolved(corpus, selector, metrics, normalize)


def model_choice(options: AuditOptions, model: str | None = None) -> ModelChoice:
    """The audit's model options for ``model`` (default: --model). The adapter is applied to
    the base checkpoint only: a fine-tuned model already holds the language's weights."""
    model = model or options.resolved_model()
    return ModelChoice(
        model,
        adapter=options.adapter if model == options.resolved_model() else "",
        language=options.language,
        task=options.task,
        max_new_tokens=options.max_new_tokens,
    )


def check_model(options: AuditOptions) -> None:
    """The checkpoint's kind against the model options; for an audit without training, its
    processor loads and (Whisper) its input window holds every clip --max-seconds keeps."""
    model = options.resolved_model()
    check_choice(inspect_model(model), model_choice(options), no_train=options.no_train)
    if options.no_train and options.train.eval_steps:
        raise AsrfairError(
            f"--eval-steps {options.train.eval_steps}: evaluates during training, and "
            "--no-train trains nothing; drop one of the two"
        )
    if not options.no_train:
        return
    try:
        processor = load_processor(model, options.adapter)
    except AsrfairError:
        raise
    except Exception as exc:
        raise model_load_error(model, exc) from None
    window = input_window_seconds(processor)
    if window and (options.max_seconds is None or options.max_seconds > window):
        raise AsrfairError(
            f"--model {model} reads at most {window:g} s of audio per clip; add --max-seconds "
            f"{window:g}, so that longer clips are dropped (and counted), not cut"
        )


def load_run_data(
    options: AuditOptions, settings: RunSettings, state: Any, resolved: Resolved
) -> RunData:
    """Decode the audio once (rank 0 first), split by speaker and choose the training rows."""
    corpus = resolved.corpus
    audio = AudioSettings(
        min_seconds=options.min_seconds,
        max_seconds=options.max_seconds,
        workers=settings.workers,
    )
    # Each node's local rank 0 fills the cache, then its other ranks read it: waiting for the
    # global rank 0 only would leave every other node decoding all audio on every rank. A cache
    # shared by several nodes is safe: the store decodes under a lock and checks again.
    with state.local_main_process_first():
        prepared = prepare_audio(
            corpus.frame,
            audio,
            progress=settings.progress and state.is_main_process,
            skipped_file=settings.out / "skipped_clips.tsv",
        )
    frame = corpus.frame.merge(prepared.table, on="id", how="inner")
    if frame.empty:
        raise AsrfairError(
            f"no clip is left after the duration filter ({prepared.filtered:,} outside "
            f"--min-seconds {options.min_seconds:g} / --max-seconds {options.max_seconds}); "
            "widen the limits"
        )
    split = make_split(
        frame,
        options.split,
        test_fraction=options.test_fraction,
        seed=options.split_seed,
        stratify=list(options.groups),
    )
    train_side = frame[frame["id"].isin(split.ids("train"))]
    subset = select_subset(
        train_side, resolved.selector, options.train_subset, seed=options.train.seed
    )
    notes = corpus.notes + prepared.notes + split.notes
    return RunData(corpus, frame, split, subset, notes, resolved.metrics, resolved.normalize)


def _train(options: AuditOptions, settings: RunSettings, data: RunData, state: Any) -> str:
    """Fine-tune unless ``--no-train`` or a finished model is already in the run directory."""
    model_dir = settings.out / "model"
    if options.no_train:
        return options.resolved_model()
    if (model_dir / "model.safetensors").is_file() and settings.resume:
        return str(model_dir)
    model = options.resolved_model()
    vocab, reinit = choose_vocab(model, list(data.frame["sentence"]), options.adapter)
    config = inspect_model(model).config
    processor = training_processor(model, vocab, settings.out / "processor", config)
    net = load_model(model, vocab, options.train, reinit_head=reinit, adapter=options.adapter)
    train_rows, eval_rows = data.subset, None
    if options.train.eval_steps:  # a held-out slice of the training side, never the test split
        train_rows, eval_rows = hold_out(data.subset, options.groups, options.train.seed)
        _record_hold_out(eval_rows, data, settings, state)
    fine_tune(
        net,
        processor,
        _table(train_rows, processor),
        options.train,
        work_dir=settings.out / "checkpoints",
        model_dir=model_dir,
        device=settings.device,
        is_main=state.is_main_process,
        eval_set=None if eval_rows is None else _table(eval_rows, processor),
        compute_metrics=None if eval_rows is None else _group_wer(eval_rows, options, processor),
    )
    wait_for_ranks(state.num_processes, state.process_index, "training", settings.barrier_minutes)
    return str(model_dir)


def _record_hold_out(
    eval_rows: pd.DataFrame, data: RunData, settings: RunSettings, state: Any
) -> None:
    """--eval-steps trains on fewer rows than the subset: the held-out ids go to
    splits/eval.txt and the report says how many, so the training table is not misread."""
    if state.is_main_process:
        ids = "\n".join(sorted(eval_rows["id"])) + "\n"
        files.write_text(settings.out / "splits" / "eval.txt", ids)
    data.notes.append(
        f"--eval-steps held out {len(eval_rows):,} of the subset's {len(data.subset):,} "
        f"utterances ({eval_rows['speaker'].nunique():,} speakers, at least one per group) to "
        "log per-group WER during training; the model did not train on them "
        "(splits/eval.txt)"
    )


def _table(rows: pd.DataFrame, processor: Any) -> Any:
    return training_table(rows["cache"], rows["n_samples"], rows["sentence"], processor)


def _group_wer(rows: pd.DataFrame, options: AuditOptions, processor: Any) -> GroupWER:
    """The Trainer's compute_metrics: per-group WER of the held-out rows, in their order."""
    labels = {column: rows[column].tolist() for column in all_columns(options.groups)}
    return GroupWER(processor, labels, rows["speaker"].tolist(), groupings=options.groups)


def _transcribe(
    choice: ModelChoice,
    settings: RunSettings,
    data: RunData,
    state: Any,
    options_groups: tuple[str, ...],
) -> Path:
    test = data.frame[data.frame["id"].isin(data.split.ids("test"))].set_index("id")
    clips = [
        Clip(str(i), str(c), int(n))
        for i, c, n in zip(test.index, test["cache"], test["n_samples"], strict=True)
    ]
    rows: dict[str, Any] = dict(zip(test.index.astype(str), test.to_dict("records"), strict=True))
    columns = all_columns(options_groups)
    device = pick_device(settings.device)
    transcriber = load_transcriber(choice, device)
    return transcribe_sharded(
        transcriber,
        clips,
        settings,
        (state.process_index, state.num_processes),
        extra=lambda utt, hyp: _record(rows[utt], hyp, columns),
        postprocess=data.normalize,
    )


def transcribe_sharded(
    transcriber: Any,
    clips: list[Clip],
    settings: RunSettings,
    shard: tuple[int, int],
    *,
    extra: Callable[[str, str], dict[str, Any]] | None = None,
    postprocess: Callable[[str], str] | None = None,
) -> Path:
    """This rank's share of ``clips`` into its predictions file, then (rank 0, once every rank
    has finished) every rank file of the run merged into predictions.jsonl, which must then
    hold every clip: the part of the infer stage that decides which rank does what."""
    rank, world = shard
    merged = settings.out / "predictions.jsonl"
    target = merged if world == 1 else settings.out / f"predictions.rank{rank}.jsonl"
    device = getattr(transcriber, "device", torch.device("cpu"))
    # Every rank must plan the same batches: the padded seconds chosen from each GPU's free
    # memory are agreed on (the smallest), or the ranks' shares would overlap and leave gaps.
    seconds = settings.batch_seconds or default_batch_seconds(transcriber, device)
    workers = settings.infer_workers
    transcribe_to_file(
        transcriber,
        clips,
        target,
        batch_seconds=agree_min(seconds, world),
        extra=extra,
        shard=shard,
        done=finished_ids(settings.out),
        progress=settings.progress and rank == 0,
        workers=default_workers(device) if workers is None else workers,
        postprocess=postprocess,
    )
    wait_for_ranks(world, rank, "transcription", settings.barrier_minutes)
    if rank == 0:
        if rank_files(settings.out):  # this world's, or an earlier world size's
            merge_shards(settings.out)
        check_coverage(merged, {c.id for c in clips})
    return merged


def _record(row: dict[str, Any], hyp: str, columns: list[str]) -> dict[str, Any]:
    counts = utterance_counts(row["sentence"], hyp)
    record: dict[str, Any] = {"speaker": row["speaker"], "ref": row["sentence"]}
    record.update({c: row[c] for c in columns})
    if "seconds" in row:  # the clip's length, a covariate for metrics (scoring.DURATION_COLUMN)
        record[DURATION_COLUMN] = round(float(row["seconds"]), 3)
    record.update(dict(zip(COUNT_COLUMNS, counts, strict=True)))
    return record


def run_plan(plan: AuditPlan) -> Report | None:
    """What ``asrfair audit`` and ``asrfair.audit()`` both run, once their options are resolved."""
    use_cache_dir(plan.cache_dir)
    return run_audit(plan.options, plan.settings)


def run_audit(options: AuditOptions, settings: RunSettings) -> Report | None:
    """Run (or resume) an audit; returns the Report on rank 0 and None on other ranks."""
    from accelerate import PartialState

    quiet_libraries()
    # On CPU, accelerate joins torchrun's processes (gloo) only when told the run is CPU-only.
    state = PartialState(cpu=pick_device(settings.device).type == "cpu")
    start_monitoring(state.num_processes)
    resolved = preflight(options, settings)  # before the lock: a typo leaves nothing on disk
    with run_lock(settings.out) if state.is_main_process else nullcontext():
        return _run_audit(options, settings, state, resolved)


def _run_audit(
    options: AuditOptions, settings: RunSettings, state: Any, resolved: Resolved
) -> Report | None:
    out = settings.out
    if state.is_main_process:
        check_run_dir(out, options.identity(), settings.resume, AuditOptions.default_identity())
        out.mkdir(parents=True, exist_ok=True)
        files.write_json(
            out / "config.json",
            {
                "options": options.identity(),
                "settings": {
                    "device": settings.device,
                    "batch_seconds": settings.batch_seconds,
                    "infer_workers": settings.infer_workers,
                    "barrier_minutes": settings.barrier_minutes,
                    "train": options.train.settings(),
                    "stats": asdict(settings.stats),
                    "metrics": list(settings.metrics),
                },
                "versions": versions(),
                "seeds": AuditPlan(options, settings).seeds(),
            },
        )
    wait_for_ranks(state.num_processes, state.process_index, "the run folder's check", 5.0)
    timings = StageTimes(out, enabled=state.is_main_process)
    with timings.stage("prepare_s"):
        data = load_run_data(options, settings, state, resolved)
    if state.is_main_process:
        write_split(data.split, out / "splits")
        files.write_text(out / "splits" / "subset.txt", "\n".join(sorted(data.subset["id"])) + "\n")
    with timings.stage("train_s"):
        model_path = _train(options, settings, data, state)
    choice = model_choice(options, model_path)
    with timings.stage("infer_s"):
        predictions = _transcribe(choice, settings, data, state, options.groups)
    if not state.is_main_process:
        return None
    return _report(options, settings, data, predictions, choice, timings.totals())


def _report(
    options: AuditOptions,
    settings: RunSettings,
    data: RunData,
    predictions: Path,
    choice: ModelChoice,
    timings: dict[str, float],
) -> Report:
    table = score_predictions(predictions, options.groups, set(data.split.ids("test")))
    kind = inspect_model(choice.path).kind
    unknown = {}  # a CTC vocabulary is characters; a seq2seq tokenizer writes any text
    if kind == CTC:
        processor = load_processor(choice.path, choice.adapter)
        unknown = unknown_characters(processor, list(table.frame["ref"]))
    report = run_metrics(
        table,
        settings.stats,
        data.metrics,
        config={"dataset": options.dataset, "model": portable_model(options.resolved_model())},
    )
    body = report.body
    if not isinstance(body, ScoreBody):  # run_metrics makes nothing else
        raise TypeError(f"run_metrics gave a {type(body).__name__}, not a ScoreBody")
    body.warnings[:0] = data.notes  # the table's own notes are already first
    if unknown:
        n = sum(unknown.values())
        chars = "".join(sorted(unknown))
        body.warnings.append(
            f"{n} test character(s) missing from the model's vocabulary were read as [UNK]: {chars}"
        )
    body.run = {  # the bundled checkpoint by name: a shared report names no local path
        "model": portable_model(options.resolved_model()),
        "model_kind": kind,
        "trained_model": None if options.no_train else str(settings.out / "model"),
        "dataset": options.dataset,
        "train_subset": options.train_subset,
        "subset_size": group_sizes(data.subset, options.groups),
        "subset_total": size_summary(data.subset),
        "split": data.split.method,
        "no_train": options.no_train,
        "hyperparameters": options.train.as_dict(),
        "versions": versions(),
        "timings": timings,
    }
    report.kind = "audit"
    write_outputs(report, settings.out, settings.plugins.exporters())
    return report
