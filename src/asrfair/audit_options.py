"""The options of an audit, stated once: their names, types, defaults and help come from the
fields of ``AuditOptions``, ``TrainConfig``, ``StatsConfig`` and ``RunSettings``.

``asrfair audit``'s options, the keys of its ``--config`` file and the keywords of
``asrfair.audit()`` are all read from ``AUDIT_OPTIONS`` and resolved by ``resolve_audit``, so
the command line, a config file and a notebook cannot drift apart. This module is light (no
torch), so the CLI can build its options without loading the model stack.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from asrfair.errors import AsrfairError
from asrfair.files import read_toml
from asrfair.groups import parse_groupings
from asrfair.hparams import TrainConfig
from asrfair.metrics import DEFAULT_METRICS
from asrfair.plugins import Plugins, installed
from asrfair.runs import portable_model
from asrfair.stats import STATS_OPTIONS, StatsConfig, stats_config

SEEDS = ("split_seed", "train_seed", "stats_seed")


METRICS_HELP = "Metric plugins, comma-separated; a metric's options as [bold]name:key=value[/]."


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field that is also an audit option; ``extra`` goes to the CLI (``min=0``)."""
    return field(default=default, metadata={"help": help, "cli": extra})


def demo_model() -> str:
    from importlib.resources import files

    return str(files("asrfair") / "demo" / "model")


@dataclass(frozen=True)
class AuditOptions:
    """What decides a run's results; all of it is written to config.json."""

    dataset: str = option("demo", "demo, commonvoice:PATH, hf:NAME, manifest:FILE.")
    model: str = option(
        "", "CTC or seq2seq (Whisper) checkpoint folder \\[default: the demo checkpoint]."
    )
    train_subset: str = option("all", "all, half, fraction:F, male, female, COL=VALUE...")
    groups: tuple[str, ...] = option(
        ("gender",), "Grouping columns, comma-separated; [bold]a*b[/] for intersectional groups."
    )
    no_train: bool = option(False, "Audit the checkpoint as it is.")
    adapter: str = option("", "MMS: the language adapter to load, e.g. [bold]fra[/].")
    language: str = option(
        "", "Whisper: the spoken language, e.g. [bold]fr[/] \\[default: detected]."
    )
    task: str = option("", "Whisper: transcribe or translate \\[default: transcribe].")
    max_new_tokens: int | None = option(
        None, "Seq2seq: at most N tokens per clip \\[default: the checkpoint's].", min=1
    )
    normalizer: str = option("cv-french", "Text normaliser for ref and hyp (see `plugins`).")
    split: str = option("speaker", "[bold]speaker[/] (seeded, speaker-disjoint) or official.")
    test_fraction: float = option(0.2, "Share of utterances (whole speakers) in test.")
    split_seed: int = option(0, "Seed of the train/test split \\[default: --seed].")
    min_seconds: float = option(0.0, "Drop clips shorter than this.", min=0)
    max_seconds: float | None = option(None, "Drop clips longer than this.")
    columns: str = option(
        "",
        "The dataset's own column names, e.g. [bold]sentence=transcription,speaker=client[/].",
    )
    train: TrainConfig = field(default_factory=TrainConfig)  # its seed is --train-seed

    def resolved_model(self) -> str:
        return self.model or demo_model()

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["train"] = self.train.identity()
        data["groups"] = list(self.groups)
        data["model"] = portable_model(self.resolved_model())
        return data

    @classmethod
    def default_identity(cls) -> dict[str, Any]:
        """What a stored run that predates an option is read as having used for it."""
        return cls().identity()


@dataclass(frozen=True)
class RunSettings:
    """How a run is executed and reported; changing these never changes its predictions."""

    out: Path
    resume: bool = option(False, "Continue the run in --out where it stopped.")
    device: str = option("auto", "auto, cpu, cuda, cuda:N.")
    workers: int = option(0, "Audio decoding processes; 0 = every core.", min=0)
    batch_seconds: float | None = option(
        None,
        "Padded audio per inference batch \\[default: 60 on CPU; on CUDA, from free memory].",
        min=1,
    )
    infer_workers: int | None = option(
        None,
        "Processes that load and pad inference batches \\[default: up to 4 on CUDA, 0 on CPU].",
        min=0,
    )
    barrier_minutes: float = option(
        30.0,
        "Several processes: how long a rank waits for the others at the end of a stage.",
        min=0.1,
    )
    stats: StatsConfig = field(default_factory=StatsConfig)
    metrics: tuple[str, ...] = option(DEFAULT_METRICS, METRICS_HELP)
    progress: bool = True
    # Handed in by the CLI, a test or the API; not an option (no help metadata).
    plugins: Plugins = field(default_factory=installed, repr=False, compare=False)


@dataclass(frozen=True)
class Spec:
    """One audit option: its name (``learning_rate`` is ``--learning-rate``), its type, its
    default, its help, which dataclass field it sets (``home``.``target``) and CLI extras."""

    name: str
    kind: Any
    default: Any
    help: str
    home: str  # options, train, stats, settings, or run (for seed and cache_dir)
    target: str
    cli: Mapping[str, Any] = field(default_factory=dict)


def _specs(cls: type, home: str, rename: Mapping[str, str] | None = None) -> list[Spec]:
    hints = typing.get_type_hints(cls)
    return [
        Spec(
            (rename or {}).get(f.name, f.metadata.get("option", f.name)),
            hints[f.name],
            f.default,
            f.metadata["help"],
            home,
            f.name,
            f.metadata.get("cli", {}),
        )
        for f in fields(cls)
        if "help" in f.metadata
    ]


def _all_specs() -> dict[str, Spec]:
    seed = Spec(
        "seed",
        int,
        0,
        "Sets --split-seed, --train-seed and --stats-seed.",
        "run",
        "",
        {"rich_help_panel": "Run"},
    )
    cache = Spec(
        "cache_dir",
        Path | None,
        None,
        "Audio cache folder \\[default: $ASRFAIR_CACHE/audio or ~/.cache/asrfair/audio].",
        "run",
        "",
    )
    out = Spec(
        "out",
        Path | None,
        None,
        "Run folder \\[default: runs/<timestamp>-<subset>].",
        "run",
        "",
        {"short": "-o"},
    )
    specs = [
        *_specs(AuditOptions, "options"),
        *_specs(TrainConfig, "train", {"seed": "train_seed"}),
        seed,
        *_specs(StatsConfig, "stats"),
        out,
        *_specs(RunSettings, "settings"),
        cache,
    ]
    return {spec.name: spec for spec in specs}


AUDIT_OPTIONS = _all_specs()
# A config file's tables, keyed as the dataclass fields (and the study file's tables).
SECTIONS = {
    "train": {f.name: "train_seed" if f.name == "seed" else f.name for f in fields(TrainConfig)},
    "statistics": {("seed" if name == "stats_seed" else name): name for name in STATS_OPTIONS},
}


@dataclass(frozen=True)
class AuditPlan:
    """A resolved audit: what the CLI and ``asrfair.audit()`` both hand to ``run_plan``."""

    options: AuditOptions
    settings: RunSettings
    cache_dir: Path | None = None

    def seeds(self) -> dict[str, int]:
        return {
            "split": self.options.split_seed,
            "train": self.options.train.seed,
            "stats": self.settings.stats.seed,
        }


def known_keys() -> str:
    return ", ".join(AUDIT_OPTIONS)


def _key(where: str, raw: str) -> str:
    """``learning-rate`` and ``learning_rate`` are one option; an unknown one is named."""
    name = raw.replace("-", "_").removeprefix("__")
    if name not in AUDIT_OPTIONS:
        raise AsrfairError(f"{where}: unknown option {raw!r}; known: {known_keys()}")
    return name


def typed(where: str, name: str, value: Any, kind: Any) -> Any:
    """``value`` as an option of type ``kind``, or a one-line error naming ``where`` and the
    option: an int passes for a float, a bool never passes for an int, a list of text (or
    comma-separated text) for a tuple, text for a path."""
    args = typing.get_args(kind)
    if value is None and type(None) in args:
        return None
    base = next((a for a in args if a is not type(None)), kind) if args else kind
    if base is Path and isinstance(value, str | Path):
        return Path(value)
    if typing.get_origin(kind) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple) and all(isinstance(i, str) for i in items):
            return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
        raise AsrfairError(f"{where}: {name} must be a list of names, not {value!r}")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise AsrfairError(f"{where}: {name} must be {getattr(base, '__name__', base)}, not {value!r}")


def _check_limits(where: str, name: str, value: Any) -> None:
    """The limits the command line enforces (``min=0``), and finite numbers, for the values a
    config file or the API gives too."""
    flag = "--" + name.replace("_", "-")
    at = "" if where == "option" else f"{where}: "  # the command line names itself
    if isinstance(value, float) and not math.isfinite(value):
        raise AsrfairError(f"{at}{flag} {value}: give a finite number")
    if name == "device" and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(value)):
        raise AsrfairError(f"{at}{flag} {value}: use auto, cpu, cuda or cuda:N")
    least = AUDIT_OPTIONS[name].cli.get("min")
    if least is not None and value is not None and value < least:
        raise AsrfairError(f"{at}{flag} {value}: use {least} or more")


def normalise(where: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Option names checked and typed; ``seed`` is spread over the three seeds that this same
    layer does not set, so ``--seed 1`` on the command line beats a config file's
    ``split_seed`` while ``--seed 1 --stats-seed 2`` keeps the 2."""
    out = {}
    for raw, value in values.items():
        name = _key(where, raw)
        out[name] = typed(where, name, value, AUDIT_OPTIONS[name].kind)
        _check_limits(where, name, out[name])
        if name == "groups":  # "gender * age" is the grouping gender*age; "gender*" a typo
            out[name] = tuple(parse_groupings(out[name]))
    if "seed" in out:
        seed = out.pop("seed")
        out = {**dict.fromkeys(SEEDS, seed), **out}
    return out


def read_config(path: Path) -> dict[str, Any]:
    """An audit config file (TOML): the option names at the top, and optionally [train] and
    [statistics] tables keyed as in a study file; every mistake names the file and the key."""
    raw = read_toml(path, f"--config {path}", "the TOML file of audit options")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        is_table = key in SECTIONS and isinstance(value, dict)
        found = _section(path, key, value) if is_table else {key: value}
        twice = sorted(set(found) & set(flat))
        if twice:  # `bootstrap` at the top and in [statistics]: which one was meant?
            raise AsrfairError(f"{path}: {twice[0]} is set twice; keep one of the two")
        flat.update(found)
    return normalise(str(path), flat)


def _section(path: Path, section: str, table: dict[str, Any]) -> dict[str, Any]:
    names = SECTIONS[section]
    where = f"{path} [{section}]"
    out = {}
    for key, value in table.items():
        name = names.get(key.replace("-", "_"))
        if name is None:
            raise AsrfairError(f"{where}: unknown key {key!r}; known: {', '.join(names)}")
        out[name] = value
    return out


def resolve_audit(
    given: Mapping[str, Any],
    *,
    config: Path | None = None,
    where: str = "option",
    plugins: Plugins | None = None,
) -> AuditPlan:
    """Defaults, then the config file, then ``given`` (the command line's or the API's):
    the one way an audit's options become an AuditPlan."""
    from_file = read_config(config) if config else {}
    if config:  # a bad statistics value in the file names the file, one given here does not
        stats_config(_stats_part(from_file), where=str(config))
    values = {**from_file, **normalise(where, {k: v for k, v in given.items() if v is not None})}
    for name in SEEDS:
        if values.get(name, 0) < 0:
            flag = "--" + name.replace("_", "-")
            raise AsrfairError(f"{flag} {values[name]}: use a seed of 0 or more")
    parts: dict[str, dict[str, Any]] = {home: {} for home in ("options", "train", "stats")}
    settings: dict[str, Any] = {}
    for name, value in values.items():
        spec = AUDIT_OPTIONS[name]
        if spec.home == "settings":
            settings[spec.target] = value
        elif spec.home != "run":
            parts[spec.home][spec.target if spec.home != "stats" else name] = value
    try:
        train = replace(TrainConfig(), **parts["train"])
    except AsrfairError as exc:
        raise AsrfairError(f"{where if where != 'option' else 'training'}: {exc}") from None
    options = AuditOptions(**parts["options"], train=train)
    stats = stats_config(parts["stats"], where="" if where == "option" else where)
    out = values.get("out") or default_out(options.train_subset)
    settings["plugins"] = plugins or installed()
    return AuditPlan(
        options, RunSettings(out=out, stats=stats, **settings), values.get("cache_dir")
    )


def _stats_part(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if AUDIT_OPTIONS[k].home == "stats"}


def default_out(subset: str) -> Path:
    """``runs/<timestamp>-<subset>``: a new folder for every run that names none."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in subset)
    return Path("runs") / f"{stamp}-{safe}"
