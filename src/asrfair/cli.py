"""The ``asrfair`` command line: parse options, call the stages, print the report.

Commands stay thin; everything they do is a function of the pipeline modules,
so the same work can be done from Python.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from asrfair import __version__, files, plugins
from asrfair.console import stderr
from asrfair.corpus import parse_columns
from asrfair.errors import AsrfairError
from asrfair.groups import parse_groupings
from asrfair.hparams import TrainConfig
from asrfair.metrics import DEFAULT_METRICS
from asrfair.plugins import Plugins
from asrfair.report import Report
from asrfair.stats import StatsConfig

app = typer.Typer(
    name="asrfair",
    help="Does an ASR model serve some speakers worse than others? Numbers that hold up in review.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
)


def say(label: str, text: str) -> None:
    """A line on stderr: ``label`` is rich markup, ``text`` is printed literally, since paths,
    column names and group labels may hold brackets that rich would read as markup."""
    console = stderr()
    console.print(label, end="", highlight=False)
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input ends the command with one line on stderr and exit code 2."""
    try:
        yield
    except AsrfairError as exc:
        say("[bold red]error:[/] ", str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:
        if files.is_out_of_space(exc):  # a full disk in a library's own writer (a checkpoint)
            say("[bold red]error:[/] ", str(files.out_of_space(exc.filename or "disk")))
        elif files.is_unwritable(exc):
            say("[bold red]error:[/] ", f"{exc.filename}: {exc.strerror}; choose another path")
        else:
            raise
        raise typer.Exit(2) from None


_handed: ContextVar[Plugins | None] = ContextVar("asrfair_plugins", default=None)


def active() -> Plugins:
    """The plugins of this invocation: those handed to the app as its context object
    (``CliRunner().invoke(app, args, obj=Plugins.with_builtins(...))``, see asrfair.testing),
    else the installed ones. The root callback records them; commands pass them on."""
    return _handed.get() or plugins.installed()


def _version_callback(value: bool) -> None:
    if value:
        print(f"asrfair {__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    ctx: typer.Context,
    *,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = None,
) -> None:
    """asrfair: per-group WER/CER with speaker-level intervals, gaps and tests."""
    _handed.set(ctx.obj if isinstance(ctx.obj, Plugins) else None)
    for message in active().errors:
        say("[yellow]warning:[/] ", message)


CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Audio cache folder \\[default: $ASRFAIR_CACHE/audio or ~/.cache/asrfair/audio].",
    ),
]


# Options shared by score and compare -----------------------------------------------------------
GroupsOpt = Annotated[
    str,
    typer.Option(
        "--groups",
        help="Grouping columns, comma-separated; [bold]a*b[/] for intersectional groups.",
    ),
]
RefOpt = Annotated[str, typer.Option("--ref-col", help="Column of reference transcripts.")]
HypOpt = Annotated[str, typer.Option("--hyp-col", help="Column of ASR hypotheses.")]
IdOpt = Annotated[
    str | None,
    typer.Option("--id-col", help="Utterance id column \\[default: id, else line numbers]."),
]
SpeakerOpt = Annotated[
    str | None,
    typer.Option(
        "--speaker-col",
        help="Speaker column, the resampling unit \\[default: speaker, else utterances].",
    ),
]
NormOpt = Annotated[
    str, typer.Option("--normalizer", help="Text normaliser for ref and hyp (see `plugins`).")
]
BootOpt = Annotated[
    int,
    typer.Option(
        "--bootstrap",
        help="Bootstrap draws per group; 0 turns intervals off.",
    ),
]
PermOpt = Annotated[
    int,
    typer.Option(
        "--permutations",
        help="Relabelings for gap p-values (all of them when there are fewer); 0: no tests.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random draw.")]
ConfOpt = Annotated[
    float,
    typer.Option("--confidence", help="Interval confidence level, 0.5 to 0.999."),
]
IntervalOpt = Annotated[
    str,
    typer.Option(
        "--interval",
        help="Interval: auto (bootstrap-t from 5 speakers, t below), bootstrap-t, t, "
        "percentile or bca.",
    ),
]
PAdjustOpt = Annotated[
    str,
    typer.Option(
        "--p-adjust",
        help="Gap p-value adjustment: holm (per grouping, metric and kind of gap), holm-all "
        "(one family) or none.",
    ),
]
GapsOpt = Annotated[
    str,
    typer.Option(
        "--gaps",
        help="Gaps to report: auto (pairs up to 4 groups, else vs-rest), pairs, vs-best, "
        "vs-rest, ref:VALUE or none; 3+ groups also get worst - best.",
    ),
]
MinSpkOpt = Annotated[
    int,
    typer.Option("--min-speakers", help="Warn for groups with fewer speakers than this."),
]
InputFormatOpt = Annotated[
    str,
    typer.Option(
        "--input-format",
        help="auto (by suffix; '-' by its first line), csv, tsv, jsonl, nemo, parquet, or, "
        "with --ref-file, kaldi, trn or ctm.",
    ),
]
RefFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ref-file",
        help="Reference for hypotheses kept apart: a Kaldi data directory (text, utt2spk, "
        "spk2gender), a .trn, or an .stm for .ctm hypotheses.",
    ),
]
SpeakerFromIdOpt = Annotated[
    str,
    typer.Option(
        "--speaker-from-id",
        help="trn: speaker from the utterance id: spu_id (text before the first - or _), wsj "
        "(first 3 characters) or a regular expression with one group.",
    ),
]
StmLabelsOpt = Annotated[
    str,
    typer.Option(
        "--stm-labels",
        help="stm: names of the <label> fields in order, e.g. set,condition,gender "
        "\\[default: label1, label2...].",
    ),
]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Exporter: rich, json, csv, md, latex or a plugin's.")
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write the report to this file.")]


def check_out(out: Path | None, inputs: list[Path]) -> None:
    """Refuse an --out that cannot take the report, before any work is done."""
    if out is None:
        return
    if out.is_dir():
        raise AsrfairError(f"--out {out} is a folder; give a file path such as {out / 'report.md'}")
    if out.exists() and not out.resolve().is_file():  # /dev/null, a FIFO, /dev/stdout
        raise AsrfairError(
            f"--out {out} is not a regular file; leave --out out to print the report instead"
        )
    if any(out.resolve() == path.resolve() for path in inputs):
        raise AsrfairError(f"--out {out} is an input file; write the report somewhere else")


def uncut_width(console: Console, renderable: Any) -> int:
    """Wide enough that no table cell is cut: a terminal crops a table with an ellipsis to fit
    its width, which is right on screen, but a pipe or file must carry every group label whole.
    """
    from rich.measure import Measurement

    unbounded = console.options.update_width(1_000_000)
    natural = Measurement.get(console, unbounded, renderable).maximum
    return max(console.width, natural)


def print_uncut(renderable: Any) -> None:
    """Print to stdout; piped, at the width the renderable needs (see ``uncut_width``)."""
    console = Console()
    if not console.is_terminal:
        console.width = uncut_width(console, renderable)
    console.print(renderable)


def emit(report: Report, fmt: str, out: Path | None) -> None:
    """Render with the named exporter to stdout, or to ``out`` (plain text)."""
    exporter = active().exporters().get(fmt, option="--format")
    rendered = exporter(report)
    if out is None:
        if isinstance(rendered, str):
            print(rendered, end="")
        else:
            print_uncut(rendered)
        return
    if not isinstance(rendered, str):
        buffer = io.StringIO()
        console = Console(file=buffer, width=120, color_system=None)
        console.width = uncut_width(console, rendered)
        console.print(rendered)
        rendered = buffer.getvalue()
    files.write_text(out, rendered)
    say("", f"wrote {out}")


def emit_several(reports: list[Report], names: list[str], fmt: str, out: Path | None) -> None:
    """Several comparisons: one file each (``--out cmp.md`` gives ``cmp.NAME.md``), or one
    stream that stays one valid document (a JSON array); CSV tables cannot share a stream."""
    if len(reports) == 1:
        emit(reports[0], fmt, out)
        return
    if out is not None:
        targets = [out.with_name(f"{out.stem}.{name}{out.suffix}") for name in names]
        if len(set(targets)) < len(targets):
            raise AsrfairError("compare: two run folders share a name; give them distinct names")
        for target in targets:
            check_out(target, [])
        for report, target in zip(reports, targets, strict=True):
            emit(report, fmt, target)
        return
    if fmt == "json":
        print(json.dumps([r.data for r in reports], indent=2, ensure_ascii=False))
    elif fmt == "csv":
        raise AsrfairError(
            "compare of more than two runs gives one CSV table per pair; pass --out FILE.csv "
            "to write each to its own file"
        )
    else:
        for report in reports:
            emit(report, fmt, None)


def input_options(
    input_format: str, ref_file: Path | None, speaker_from_id: str, stm_labels: str
) -> dict[str, Any]:
    """The input options of score and compare as the API's keyword arguments."""
    return {
        "input_format": input_format,
        "ref_file": ref_file,
        "speaker_from_id": speaker_from_id,
        "stm_labels": [name.strip() for name in stm_labels.split(",") if name.strip()],
    }


@app.command("score")
def score_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="Transcripts (.csv .tsv .jsonl .json .parquet, - for stdin), or hypotheses "
            "(Kaldi text, .trn, .ctm) with --ref-file."
        ),
    ],
    *,
    groups: GroupsOpt = "",
    ref_col: RefOpt = "ref",
    hyp_col: HypOpt = "hyp",
    id_col: IdOpt = None,
    speaker_col: SpeakerOpt = None,
    input_format: InputFormatOpt = "auto",
    ref_file: RefFileOpt = None,
    speaker_from_id: SpeakerFromIdOpt = "spu_id",
    stm_labels: StmLabelsOpt = "",
    normalizer: NormOpt = "none",
    metrics: Annotated[
        str, typer.Option("--metrics", help="Metric plugins, comma-separated.")
    ] = ",".join(DEFAULT_METRICS),
    bootstrap: BootOpt = 10_000,
    permutations: PermOpt = 10_000,
    seed: SeedOpt = 0,
    confidence: ConfOpt = 0.95,
    min_speakers: MinSpkOpt = 10,
    interval: IntervalOpt = "auto",
    p_adjust: PAdjustOpt = "holm",
    gaps: GapsOpt = "auto",
    fmt: FormatOpt = "rich",
    out: OutOpt = None,
) -> None:
    """Score transcripts from any ASR system: WER/CER overall and per group, with gaps."""
    from asrfair import api

    with user_errors():
        active().exporters().get(fmt, option="--format")  # fail before the work, not after
        check_out(out, [file, *([ref_file] if ref_file else [])])
        result = api.score(
            file,
            groups=parse_groupings(groups),
            ref=ref_col,
            hyp=hyp_col,
            id=id_col,
            speaker=speaker_col,
            **input_options(input_format, ref_file, speaker_from_id, stm_labels),
            normalizer=normalizer,
            metrics=[m.strip() for m in metrics.split(",") if m.strip()],
            bootstrap=bootstrap,
            permutations=permutations,
            seed=seed,
            confidence=confidence,
            min_speakers=min_speakers,
            interval=interval,
            p_adjust=p_adjust,
            gaps=gaps,
            plugins=active(),
        )
        emit(result.report, fmt, out)


@app.command("compare")
def compare_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Two transcripts files (or two systems' hypotheses with --ref-file), or two "
            "or more run folders (A first)."
        ),
    ],
    *,
    groups: GroupsOpt = "",
    ref_col: RefOpt = "ref",
    hyp_col: HypOpt = "hyp",
    id_col: IdOpt = None,
    speaker_col: SpeakerOpt = None,
    input_format: InputFormatOpt = "auto",
    ref_file: RefFileOpt = None,
    speaker_from_id: SpeakerFromIdOpt = "spu_id",
    stm_labels: StmLabelsOpt = "",
    normalizer: NormOpt = "none",
    bootstrap: BootOpt = 10_000,
    seed: SeedOpt = 0,
    confidence: ConfOpt = 0.95,
    min_speakers: MinSpkOpt = 10,
    pair_by_line: Annotated[
        bool,
        typer.Option(
            "--pair-by-line",
            help="Files without ids: pair rows by line (both list the same utterances in order).",
        ),
    ] = False,
    fmt: FormatOpt = "rich",
    out: OutOpt = None,
) -> None:
    """Paired comparison on shared utterances: B - A with an interval, P(B better).

    Run folders are compared on their stored predictions, each against the first; they must
    share the test set exactly. With several, --out cmp.md writes cmp.RUN.md per pair.
    """
    from asrfair import api
    from asrfair.comparison import compare_runs

    with user_errors():
        active().exporters().get(fmt, option="--format")
        check_out(out, [*paths, *([ref_file] if ref_file else [])])
        cfg = StatsConfig(bootstrap, 0, seed, confidence, min_speakers)
        if len(paths) < 2:
            raise AsrfairError("compare needs at least two paths: A and B")
        if paths.count(Path("-")) > 1:
            raise AsrfairError("compare: only one of A and B can be read from standard input")
        for path in paths:
            if str(path) != "-" and not path.exists():
                raise AsrfairError(f"{path}: no such file or run folder")
        if any(p.is_dir() for p in paths) and not all(p.is_dir() for p in paths):
            raise AsrfairError(
                "compare takes run folders or transcript files, not a mix; score the run's "
                "predictions.jsonl as a file instead"
            )
        if all(p.is_dir() for p in paths):
            reports = [compare_runs(paths[0], other, cfg) for other in paths[1:]]
            emit_several(reports, [other.name for other in paths[1:]], fmt, out)
            return
        if len(paths) != 2:
            raise AsrfairError("compare takes exactly two transcripts files (or run folders)")
        result = api.compare(
            paths[0],
            paths[1],
            groups=parse_groupings(groups),
            ref=ref_col,
            hyp=hyp_col,
            id=id_col,
            speaker=speaker_col,
            **input_options(input_format, ref_file, speaker_from_id, stm_labels),
            normalizer=normalizer,
            pair_by_line=pair_by_line,
            bootstrap=bootstrap,
            seed=seed,
            confidence=confidence,
            min_speakers=min_speakers,
            plugins=active(),
        )
        emit(result.report, fmt, out)


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(help="A run folder or a study folder.")],
    *,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="rich, md, latex, csv, json, or png (plots).")
    ] = "rich",
    bold_best: Annotated[
        bool, typer.Option("--bold-best", help="Bold the lowest rate of each column.")
    ] = False,
    out: OutOpt = None,
) -> None:
    """Re-render a finished run or study from its stored metrics; nothing is recomputed."""
    from asrfair.runs import load_stored_report
    from asrfair.study import write_plots

    with user_errors():
        report = load_stored_report(path)
        report.bold_best = bold_best
        if fmt == "png":  # figures go into the run or study folder, or into --out DIR
            if out is not None and out.suffix:
                raise AsrfairError(
                    f"--out {out}: with --format png give a folder; the figures are written as "
                    "group_wer.png/.svg (and gap_forest for a study) inside it"
                )
            for written in write_plots(report, out or path):
                print(written)
            return
        emit(report, fmt, out)


@app.command("study")
def study_command(
    file: Annotated[Path, typer.Argument(help="A study file (TOML); see examples/.")],
    *,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Study folder \\[default: beside the file].")
    ] = None,
    fmt: FormatOpt = "rich",
    bold_best: Annotated[bool, typer.Option("--bold-best", help="Bold the best rates.")] = False,
) -> None:
    """Run every (training subset x hyper-parameter set) on one test set; one combined table."""
    from asrfair.study import load_study, run_study, write_study_outputs

    with user_errors():
        active().exporters().get(fmt, option="--format")
        study = load_study(file, active())
        folder = out or file.with_suffix("")
        if folder.exists() and not folder.is_dir():
            raise AsrfairError(
                f"{file}: the study folder would be {folder}, which is a file; name the study "
                "file with a .toml suffix, or pass --out"
            )
        try:
            report = run_study(study, folder, active())
        except KeyboardInterrupt:
            stderr().print(
                "[yellow]interrupted:[/] run the same command to resume", highlight=False
            )
            raise typer.Exit(130) from None
        report.bold_best = bold_best
        write_study_outputs(report, folder, active().exporters())
        emit(report, fmt, None)
        say("", f"study folder: {folder}")


data_app = typer.Typer(
    help="Look at and prepare datasets: Common Voice folders, HF datasets, manifests, the demo.",
    rich_markup_mode="rich",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

DatasetArg = Annotated[
    str,
    typer.Argument(help="[bold]demo[/], commonvoice:PATH, hf:NAME[:CONFIG][@SPLIT], manifest:FILE"),
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="[bold]speaker[/] (seeded, speaker-disjoint) or official.")
]
TestFracOpt = Annotated[
    float, typer.Option("--test-fraction", help="Share of utterances (whole speakers) in test.")
]
ColumnsOpt = Annotated[
    str,
    typer.Option(
        "--columns",
        help="The dataset's own column names, e.g. [bold]sentence=transcription,speaker=client[/].",
    ),
]


@data_app.command("inspect")
def data_inspect_command(
    dataset: DatasetArg = "demo",
    *,
    groups: GroupsOpt = "gender",
    normalizer: NormOpt = "cv-french",
    split: SplitOpt = "speaker",
    test_fraction: TestFracOpt = 0.2,
    seed: SeedOpt = 0,
    columns: ColumnsOpt = "",
    cache_dir: CacheDirOpt = None,
    fmt: FormatOpt = "rich",
    out: OutOpt = None,
) -> None:
    """Utterances, speakers and hours per group and split: a paper's dataset table."""
    from asrfair.audio import use_cache_dir
    from asrfair.dataset import inspect_dataset

    with user_errors():
        use_cache_dir(cache_dir)  # where an HF dataset's embedded audio is written
        active().exporters().get(fmt, option="--format")
        normalize = active().normalizers().get(normalizer, option="--normalizer")
        report = inspect_dataset(
            dataset,
            normalize,
            parse_groupings(groups),
            how=split,
            test_fraction=test_fraction,
            seed=seed,
            columns=parse_columns(columns),
            datasets=active().datasets(),
        )
        emit(report, fmt, out)


@data_app.command("prepare")
def data_prepare_command(
    dataset: DatasetArg = "demo",
    *,
    normalizer: NormOpt = "cv-french",
    columns: ColumnsOpt = "",
    min_seconds: Annotated[
        float, typer.Option("--min-seconds", min=0, help="Drop clips shorter than this.")
    ] = 0.0,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Drop clips longer than this.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Decoding processes; 0 = every core.")
    ] = 0,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Decode, downmix and resample every clip to 16 kHz into the cache (done once)."""
    from asrfair.audio import AudioSettings, prepare_audio, use_cache_dir
    from asrfair.dataset import prepare_metadata

    with user_errors():
        use_cache_dir(cache_dir)
        normalize = active().normalizers().get(normalizer, option="--normalizer")
        corpus = prepare_metadata(
            dataset, normalize, [], parse_columns(columns), datasets=active().datasets()
        )
        settings = AudioSettings(min_seconds=min_seconds, max_seconds=max_seconds, workers=workers)
        prepared = prepare_audio(corpus.frame, settings, cache_dir)
        hours = prepared.table["seconds"].sum() / 3600
        from_cache = len(corpus.frame) - len(prepared.failed) - prepared.decoded
        print(
            f"{corpus.name}: {len(prepared.table):,} clips kept ({hours:.2f} h); "
            f"{prepared.decoded:,} decoded, {from_cache:,} from cache, "
            f"{len(prepared.failed):,} failed, {prepared.filtered:,} outside the duration filter"
        )
        for note in corpus.notes + prepared.notes:
            say("[yellow]note:[/] ", note)


TRAIN_DEFAULTS = TrainConfig()


def _default_out(subset: str) -> Path:
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in subset)
    return Path("runs") / f"{stamp}-{safe}"


@app.command("audit")
def audit_command(
    *,
    dataset: Annotated[
        str, typer.Option("--dataset", help="demo, commonvoice:PATH, hf:NAME, manifest:FILE.")
    ] = "demo",
    model: Annotated[
        str, typer.Option("--model", help="Wav2Vec2ForCTC folder \\[default: the demo checkpoint].")
    ] = "",
    train_subset: Annotated[
        str,
        typer.Option("--train-subset", help="all, half, fraction:F, male, female, COL=VALUE..."),
    ] = "all",
    groups: GroupsOpt = "gender",
    no_train: Annotated[
        bool, typer.Option("--no-train", help="Audit the checkpoint as it is.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder \\[default: runs/<timestamp>-<subset>]."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out where it stopped.")
    ] = False,
    normalizer: NormOpt = "cv-french",
    split: SplitOpt = "speaker",
    test_fraction: TestFracOpt = 0.2,
    columns: ColumnsOpt = "",
    min_seconds: Annotated[float, typer.Option("--min-seconds", min=0)] = 0.0,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds")] = None,
    epochs: Annotated[
        float, typer.Option("--epochs", help="Training epochs.")
    ] = TRAIN_DEFAULTS.epochs,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Stop after N steps.")
    ] = TRAIN_DEFAULTS.max_steps,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = TRAIN_DEFAULTS.learning_rate,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = TRAIN_DEFAULTS.weight_decay,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps")] = TRAIN_DEFAULTS.warmup_steps,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Per-device batch.")
    ] = TRAIN_DEFAULTS.batch_size,
    grad_accum: Annotated[int, typer.Option("--grad-accum")] = TRAIN_DEFAULTS.grad_accum,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing")
    ] = TRAIN_DEFAULTS.gradient_checkpointing,
    eval_steps: Annotated[
        int, typer.Option("--eval-steps", help="0: no evaluation.")
    ] = TRAIN_DEFAULTS.eval_steps,
    save_steps: Annotated[int, typer.Option("--save-steps")] = TRAIN_DEFAULTS.save_steps,
    logging_steps: Annotated[int, typer.Option("--logging-steps")] = TRAIN_DEFAULTS.logging_steps,
    mask_time_prob: Annotated[
        float, typer.Option("--mask-time-prob")
    ] = TRAIN_DEFAULTS.mask_time_prob,
    layerdrop: Annotated[float, typer.Option("--layerdrop")] = TRAIN_DEFAULTS.layerdrop,
    hidden_dropout: Annotated[
        float, typer.Option("--hidden-dropout")
    ] = TRAIN_DEFAULTS.hidden_dropout,
    attention_dropout: Annotated[
        float, typer.Option("--attention-dropout")
    ] = TRAIN_DEFAULTS.attention_dropout,
    activation_dropout: Annotated[
        float, typer.Option("--activation-dropout")
    ] = TRAIN_DEFAULTS.activation_dropout,
    feat_proj_dropout: Annotated[
        float, typer.Option("--feat-proj-dropout")
    ] = TRAIN_DEFAULTS.feat_proj_dropout,
    final_dropout: Annotated[float, typer.Option("--final-dropout")] = TRAIN_DEFAULTS.final_dropout,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_seconds: Annotated[
        float, typer.Option("--batch-seconds", help="Padded audio per inference batch.")
    ] = 60.0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Audio decoding processes.")] = 0,
    cache_dir: CacheDirOpt = None,
    bootstrap: BootOpt = 10_000,
    permutations: PermOpt = 10_000,
    seed: SeedOpt = 0,
    confidence: ConfOpt = 0.95,
    min_speakers: MinSpkOpt = 10,
    interval: IntervalOpt = "auto",
    p_adjust: PAdjustOpt = "holm",
    gaps: GapsOpt = "auto",
    metrics: Annotated[
        str, typer.Option("--metrics", help="Metric plugins, comma-separated.")
    ] = ",".join(DEFAULT_METRICS),
    fmt: FormatOpt = "rich",
) -> None:
    """Fine-tune on a training subset, transcribe the fixed test set, report per-group WER/CER."""
    from asrfair.audio import use_cache_dir
    from asrfair.audit import AuditOptions, RunSettings, run_audit

    with user_errors():
        use_cache_dir(cache_dir)
        active().exporters().get(fmt, option="--format")
        stats = StatsConfig(
            bootstrap, permutations, seed, confidence, min_speakers, interval, p_adjust, gaps
        )
        train = TrainConfig(
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            batch_size=batch_size,
            grad_accum=grad_accum,
            gradient_checkpointing=gradient_checkpointing,
            eval_steps=eval_steps,
            save_steps=save_steps,
            logging_steps=logging_steps,
            mask_time_prob=mask_time_prob,
            layerdrop=layerdrop,
            hidden_dropout=hidden_dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            feat_proj_dropout=feat_proj_dropout,
            final_dropout=final_dropout,
            seed=seed,
        )
        options = AuditOptions(
            dataset=dataset,
            model=model,
            train_subset=train_subset,
            groups=tuple(parse_groupings(groups)),
            no_train=no_train,
            normalizer=normalizer,
            split=split,
            test_fraction=test_fraction,
            seed=seed,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            columns=columns,
            train=train,
        )
        run_dir = out or _default_out(train_subset)
        settings = RunSettings(
            out=run_dir,
            resume=resume,
            device=device,
            workers=workers,
            batch_seconds=batch_seconds,
            stats=stats,
            metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()),
            plugins=active(),
        )
        try:
            report = run_audit(options, settings)
        except KeyboardInterrupt:
            say("[yellow]interrupted:[/] ", f"continue with --resume --out {run_dir}")
            raise typer.Exit(130) from None
        if report is not None:  # rank 0
            emit(report, fmt, None)
            say("", f"run folder: {run_dir}")


@app.command("plugins")
def plugins_command(
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List installed plugins, their versions and the hooks they implement."""
    rows = active().info()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="asrfair plugins", title_justify="left")
    for column in ("plugin", "package", "version", "registers", "help"):
        table.add_column(column)
    for row in rows:
        names = row["registers"] or [{"kind": "hooks", "name": ", ".join(row["hooks"]), "help": ""}]
        for i, entry in enumerate(names):
            first = i == 0
            table.add_row(
                row["name"] if first else "",
                row["package"] if first else "",
                row["version"] if first else "",
                f"{entry['kind']} {entry['name']}",
                entry["help"],
                end_section=i == len(names) - 1,
            )
    print_uncut(table)


_commands_added = False


def add_plugin_commands() -> None:
    """Let plugins add commands (``register_commands``); done once, before parsing."""
    global _commands_added
    if not _commands_added:
        _commands_added = True
        plugins.installed().add_commands(app)


def main() -> None:
    add_plugin_commands()
    app()
