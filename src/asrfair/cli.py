"""The ``asrfair`` command line: parse options, call the stages, print the report.

Commands stay thin; everything they do is a function of the pipeline modules,
so the same work can be done from Python.
"""

from __future__ import annotations

import inspect
import io
import json
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.protocol import is_renderable
from rich.table import Table

from asrfair import __version__, files, plugins
from asrfair.audit_options import AUDIT_OPTIONS, METRICS_HELP, SEEDS, Spec, resolve_audit
from asrfair.console import stderr
from asrfair.corpus import parse_columns
from asrfair.errors import AsrfairError
from asrfair.groups import parse_groupings
from asrfair.metrics import DEFAULT_METRICS
from asrfair.plugins import Plugins
from asrfair.report import Report

if typing.TYPE_CHECKING:
    from asrfair.study import Study

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


@contextmanager
def damaged_report(path: Path) -> Iterator[None]:
    """A stored report edited by hand can still break a renderer on a field the loader does
    not check; say which folder, not a traceback from inside the exporter."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise AsrfairError(
            f"{path}: its stored report is damaged or was edited by hand ({what}); rewrite it by "
            "running the audit or study again with --resume"
        ) from None


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
    Path | None, typer.Option("--cache-dir", help=AUDIT_OPTIONS["cache_dir"].help)
]


# Options shared by score and compare -----------------------------------------------------------
GroupsOpt = Annotated[str, typer.Option("--groups", help=AUDIT_OPTIONS["groups"].help)]
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
NormOpt = Annotated[str, typer.Option("--normalizer", help=AUDIT_OPTIONS["normalizer"].help)]
BootOpt = Annotated[int, typer.Option("--bootstrap", help=AUDIT_OPTIONS["bootstrap"].help)]
PermOpt = Annotated[int, typer.Option("--permutations", help=AUDIT_OPTIONS["permutations"].help)]
# Where one seed is all a command draws with, its specific name is the same option.
SeedOpt = Annotated[
    int, typer.Option("--seed", "--stats-seed", help=AUDIT_OPTIONS["stats_seed"].help)
]
SplitSeedOpt = Annotated[
    int, typer.Option("--seed", "--split-seed", help="Seed of the train/test split.")
]
ConfOpt = Annotated[float, typer.Option("--confidence", help=AUDIT_OPTIONS["confidence"].help)]
IntervalOpt = Annotated[str, typer.Option("--interval", help=AUDIT_OPTIONS["interval"].help)]
PAdjustOpt = Annotated[str, typer.Option("--p-adjust", help=AUDIT_OPTIONS["p_adjust"].help)]
GapsOpt = Annotated[str, typer.Option("--gaps", help=AUDIT_OPTIONS["gaps"].help)]
MinSpkOpt = Annotated[int, typer.Option("--min-speakers", help=AUDIT_OPTIONS["min_speakers"].help)]
InputFormatOpt = Annotated[
    str,
    typer.Option(
        "--input-format",
        help="auto (by suffix; '-' by its first line; hf:FOLDER or a saved dataset's folder), "
        "csv, tsv, jsonl, nemo, parquet, hf, or, with --ref-file, kaldi, trn or ctm.",
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
    str,
    typer.Option(
        "--format",
        "-f",
        help="Exporter: rich, json, csv, md, latex, html or a plugin's (--out FILE.html alone "
        "gives html).",
    ),
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


def page_format(fmt: str, out: Path | None) -> str:
    """``--out report.html`` without ``--format`` asks for the HTML page: terminal text in a
    file named .html would show as one unformatted paragraph in a browser."""
    if fmt == "rich" and out is not None and out.suffix.lower() in (".html", ".htm"):
        return "html"
    return fmt


def emit(report: Report, fmt: str, out: Path | None) -> None:
    """Render with the named exporter to stdout, or to ``out`` (plain text)."""
    fmt = page_format(fmt, out)
    exporter = active().exporters().get(fmt, option="--format")
    rendered = exporter(report)
    if not isinstance(rendered, str) and not is_renderable(rendered):
        raise AsrfairError(
            f"--format {fmt}: the exporter returned a {type(rendered).__name__}, not text or a "
            "rich renderable; report it to the exporter's authors"
        )
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
    elif fmt in ("csv", "html"):
        what = {"csv": "CSV table", "html": "HTML page"}[fmt]
        raise AsrfairError(
            f"compare of more than two runs gives one {what} per pair; pass --out FILE.{fmt} "
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
            help="Transcripts (.csv .tsv .jsonl .json .parquet, - for stdin, hf:FOLDER[@SPLIT] "
            "saved by datasets), or hypotheses (Kaldi text, .trn, .ctm) with --ref-file."
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
    metrics: Annotated[str, typer.Option("--metrics", help=METRICS_HELP)] = ",".join(
        DEFAULT_METRICS
    ),
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
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw per-group rates with intervals: .png, .svg, .pdf."),
    ] = None,
) -> None:
    """Score transcripts from any ASR system: WER/CER overall and per group, with gaps."""
    from asrfair import api

    with user_errors():
        active().exporters().get(fmt, option="--format")  # fail before the work, not after
        check_out(out, [file, *([ref_file] if ref_file else [])])
        if plot is not None:
            check_plot(plot, groups, out)
        result = api.score(
            file,
            groups=groups,  # the API parses the grouping specs
            ref=ref_col,
            hyp=hyp_col,
            id=id_col,
            speaker=speaker_col,
            **input_options(input_format, ref_file, speaker_from_id, stm_labels),
            normalizer=normalizer,
            metrics=metrics,  # comma-separated, as the API reads it
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
        if plot is not None:
            say("", f"wrote {result.plot(plot)}")


def check_plot(plot: Path, groups: str, out: Path | None) -> None:
    """Refuse a --plot that cannot be drawn before scoring: a bad suffix (which also keeps a
    transcripts file from being overwritten), a folder, a folder that is not there, the
    --out file itself, or no --groups."""
    from asrfair.plots import check_plot_path

    check_plot_path(plot)
    if not plot.parent.is_dir():
        raise AsrfairError(f"--plot {plot}: there is no folder {plot.parent}; create it first")
    if out is not None and out.resolve() == plot.resolve():
        raise AsrfairError(f"--plot {plot} is also --out; give the report and the plot two files")
    if not parse_groupings(groups):
        raise AsrfairError(f"--plot {plot}: plots rates per group; pass --groups")


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
        cfg = api.paired_stats(bootstrap, seed, confidence, min_speakers)
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
            groups=groups,  # the API parses the grouping specs
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
        str,
        typer.Option(
            "--format", "-f", help="rich, md, latex, csv, json, html (one page), or png (plots)."
        ),
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
            with damaged_report(path):
                for written in write_plots(report, out or path):
                    print(written)
            return
        with damaged_report(path):
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
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Print one command per run (with --format json: a list)."),
    ] = False,
    run: Annotated[
        str | None, typer.Option("--run", help="Run only this run (a name from --plan); no tables.")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option("--index", help="Run only the run at this 0-based index (a job array's id)."),
    ] = None,
    gather_only: Annotated[
        bool,
        typer.Option("--gather-only", help="Write the tables; fail if a run is unfinished."),
    ] = False,
) -> None:
    """Run every (training subset x hyper-parameter set) on one test set; one combined table.

    On a cluster: --plan lists one command per run, --run/--index runs one (a job array
    task), then a plain or --gather-only study writes the tables (docs/cluster.md)."""
    from asrfair.study import load_study, pick_run, run_one, run_study, write_study_outputs

    with user_errors():
        _check_study_modes(fmt, plan=plan, run=run, index=index, gather_only=gather_only)
        study = load_study(file, active())
        if plan:
            _print_plan(study, file, out, fmt)
            return
        folder = out or file.with_suffix("")
        if folder.exists() and not folder.is_dir():
            raise AsrfairError(
                f"{file}: the study folder would be {folder}, which is a file; name the study "
                "file with a .toml suffix, or pass --out"
            )
        try:
            if run is not None or index is not None:
                done = run_one(study, folder, pick_run(study, run, index), active())
                say("", f"run {done['name']} finished in {folder / 'runs' / done['name']}")
                return
            report = run_study(study, folder, active(), gather_only=gather_only)
        except KeyboardInterrupt:
            stderr().print(
                "[yellow]interrupted:[/] run the same command to resume", highlight=False
            )
            raise typer.Exit(130) from None
        report.bold_best = bold_best
        write_study_outputs(report, folder, active().exporters())
        emit(report, fmt, None)
        say("", f"study folder: {folder}")


def _check_study_modes(
    fmt: str, *, plan: bool, run: str | None, index: int | None, gather_only: bool
) -> None:
    """--plan, one run (--run or --index) and --gather-only are three different jobs; a mix
    is a mistake in a job script, better caught before anything runs."""
    if run is not None and index is not None:
        raise AsrfairError("--run and --index both name a run; give one of them")
    one = "--run" if run is not None else "--index" if index is not None else None
    if plan and (one or gather_only):
        raise AsrfairError(f"--plan only lists the runs; drop {one or '--gather-only'}")
    if one and gather_only:
        raise AsrfairError(f"{one} runs one run and --gather-only runs none; give one of them")
    if plan and fmt not in ("rich", "json"):
        raise AsrfairError(
            f"--format {fmt}: --plan prints shell commands (the default) or json (--format json)"
        )
    active().exporters().get(fmt, option="--format")


def _print_plan(study: Study, file: Path, out: Path | None, fmt: str) -> None:
    """Commands on stdout, one a line (a job script reads line I+1 or uses --index I)."""
    from asrfair.study import plan

    planned = plan(study, file, out)
    if fmt == "json":
        print(json.dumps(planned, indent=2))
    else:
        print("".join(f"{entry['command']}\n" for entry in planned), end="")


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
SplitOpt = Annotated[str, typer.Option("--split", help=AUDIT_OPTIONS["split"].help)]
TestFracOpt = Annotated[
    float, typer.Option("--test-fraction", help=AUDIT_OPTIONS["test_fraction"].help)
]
ColumnsOpt = Annotated[str, typer.Option("--columns", help=AUDIT_OPTIONS["columns"].help)]


@data_app.command("inspect")
def data_inspect_command(
    dataset: DatasetArg = "demo",
    *,
    groups: GroupsOpt = "gender",
    normalizer: NormOpt = "cv-french",
    split: SplitOpt = "speaker",
    test_fraction: TestFracOpt = 0.2,
    seed: SplitSeedOpt = 0,
    columns: ColumnsOpt = "",
    cache_dir: CacheDirOpt = None,
    fmt: FormatOpt = "rich",
    out: OutOpt = None,
) -> None:
    """Utterances, speakers and hours per group and split: a paper's dataset table."""
    from asrfair.audio import use_cache_dir
    from asrfair.metadata import inspect_dataset

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
    from asrfair.metadata import prepare_metadata

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


PANELS = {"options": "Run", "train": "Training", "stats": "Statistics"}


def _audit_parameter(spec: Spec) -> inspect.Parameter:
    """One ``asrfair audit`` option from its dataclass field: name, type, default and help
    are the field's, so the command cannot drift from ``asrfair.audit()`` or --config."""
    kind, default = spec.kind, spec.default
    if typing.get_origin(kind) is tuple:  # groups, metrics: comma-separated on the line
        kind, default = str, ",".join(default)
    if spec.name in SEEDS:
        kind, default = int | None, None  # unset: --seed decides
    extra = dict(spec.cli)
    long = "--" + spec.name.replace("_", "-")
    if kind is bool and default is True:  # on by default: the flag that turns it off is --no-X
        long = f"{long}/--no-{long[2:]}"
    flags = [long, *([extra.pop("short")] if "short" in extra else [])]
    info = typer.Option(
        *flags, help=spec.help, **{"rich_help_panel": PANELS.get(spec.home, "Execution"), **extra}
    )
    return inspect.Parameter(
        spec.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
    )


def _audit_signature() -> inspect.Signature:
    """audit's parameters: the context, every option of AUDIT_OPTIONS, --config and --format."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    config = typer.Option(
        "--config",
        help="A TOML file of audit options (see docs/audit.md); the command line overrides it.",
        rich_help_panel="Run",
    )
    return inspect.Signature(
        [
            inspect.Parameter(
                "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
            ),
            inspect.Parameter(
                "config", keyword, default=None, annotation=Annotated[Path | None, config]
            ),
            *map(_audit_parameter, AUDIT_OPTIONS.values()),
            inspect.Parameter("fmt", keyword, default="rich", annotation=FormatOpt),
        ]
    )


def given_options(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The options typed on the command line (or set by environment): a default must not
    override the --config file, so only these are handed on."""
    defaults = ("DEFAULT", "DEFAULT_MAP")
    return {
        k: v
        for k, v in values.items()
        if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in defaults
    }


def audit_command(ctx: typer.Context, **values: Any) -> None:
    """Fine-tune on a training subset, transcribe the fixed test set, report per-group WER/CER."""
    from asrfair.pipeline import run_plan

    config, fmt = values.pop("config"), values.pop("fmt")
    with user_errors():
        active().exporters().get(fmt, option="--format")
        plan = resolve_audit(given_options(ctx, values), config=config, plugins=active())
        try:
            report = run_plan(plan)
        except KeyboardInterrupt:
            say("[yellow]interrupted:[/] ", f"continue with --resume --out {plan.settings.out}")
            raise typer.Exit(130) from None
        if report is not None:  # rank 0
            emit(report, fmt, None)
            say("", f"run folder: {plan.settings.out}")


audit_command.__signature__ = _audit_signature()  # type: ignore[attr-defined]
app.command("audit")(audit_command)


@app.command("plugins")
def plugins_command(
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List installed plugins, their versions and the hooks they implement."""
    with user_errors():  # two plugins sharing a name: say so, so one can be blocked
        rows = active().info()
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table(title="asrfair plugins", title_justify="left")
        for column in ("plugin", "package", "version", "registers", "help"):
            table.add_column(column)
        for row in rows:
            names = row["registers"] or [
                {"kind": "hooks", "name": ", ".join(row["hooks"]), "help": ""}
            ]
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
