"""The Corpus table every dataset loader produces, and its canonical demographics.

Common Voice has spelt gender three ways over its releases; a subset or a group
must mean the same speakers whichever release the table came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.groups import columns_of
from asrfair.registry import Registry
from asrfair.text import Normalizer

_GENDER = {
    "male": "male",
    "male_masculine": "male",
    "masculine": "male",
    "m": "male",
    "female": "female",
    "female_feminine": "female",
    "feminine": "female",
    "f": "female",
    "": "",
    "nan": "",
    "none": "",
    "do_not_wish_to_say": "",
}


def canonical_gender(raw: object) -> str:
    """``male``, ``female``, ``other``, or ``""`` when the speaker did not say."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return ""
    return _GENDER.get(str(raw).strip().lower(), "other")


def canonical_genders(values: pd.Series) -> pd.Series:
    return values.map(canonical_gender)


def is_empty(values: pd.Series) -> pd.Series:
    """Missing metadata: NaN or blank text. Such rows cannot be put in any group."""
    return values.isna() | (values.astype(str).str.strip() == "")


# --- the Corpus table ----------------------------------------------------------------------------
# One row per utterance: id, audio, sentence, speaker, split (finish_corpus checks and fills
# them). Loaders may add any demographic columns beside these.


@dataclass
class Corpus:
    """A dataset as asrfair sees it, with what was dropped on the way said in ``notes``.

    A loader may leave its own column names and relative audio paths: ``aliases`` lists,
    per canonical column, the names it may go by (used only where the user's ``--columns``
    did not name one), and relative ``audio`` paths are taken from ``root``.
    """

    name: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    root: Path | None = None
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)


# ``--dataset name:arg`` calls ``loader(arg)`` (``None`` without ``:arg``).
DatasetLoader = Callable[[str | None], Corpus | pd.DataFrame]


def finish_corpus(name: str, frame: pd.DataFrame, notes: list[str] | None = None) -> Corpus:
    """Check a loader's table and make its demographics canonical (raw gender is kept)."""
    notes = list(notes or [])
    missing = [c for c in ("id", "audio", "sentence") if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        raise AsrfairError(f"dataset {name!r} has no {', '.join(missing)} column; it has: {have}")
    frame = frame.copy()
    frame["id"] = frame["id"].astype(str)
    if "speaker" in frame.columns:  # numeric speaker ids (HF speaker_id) are labels, not numbers
        frame["speaker"] = frame["speaker"].astype("string").fillna("").astype(str)
    if frame["id"].duplicated().any():
        dup = frame["id"][frame["id"].duplicated()].iloc[0]
        raise AsrfairError(
            f"dataset {name!r}: utterance id {dup!r} appears more than once (without an id "
            "column, ids are the audio file names without their suffix); give each row a "
            "unique id column"
        )
    if "speaker" not in frame.columns:  # see speakers_unknown
        frame["speaker"] = frame["id"]
        notes.append("no speaker column: every utterance is its own speaker")
    if "split" not in frame.columns:
        frame["split"] = ""
    if "gender" in frame.columns:
        frame["gender_raw"] = frame["gender"].fillna("").astype(str)
        frame["gender"] = canonical_genders(frame["gender"])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].fillna("").astype(str)
    return Corpus(name, frame.reset_index(drop=True), notes)


def speakers_unknown(frame: pd.DataFrame) -> bool:
    """Whether the rows say nothing about who spoke: no speaker column, or the one
    ``finish_corpus`` fills with the utterance ids (each utterance its own speaker). Intervals
    over such "speakers" treat utterances as independent, so reports call it out up front."""
    if "speaker" not in frame.columns:
        return True
    same = frame["speaker"].astype(str) == frame["id"].astype(str)
    return len(frame) > 0 and bool(same.all())


def drop_empty_groups(corpus: Corpus, groupings: list[str]) -> Corpus:
    """Rows with an empty value in a requested group column are dropped and counted."""
    frame, notes = corpus.frame, list(corpus.notes)
    for grouping in groupings:
        for column in columns_of(grouping):
            if column not in frame.columns:
                have = ", ".join(c for c in frame.columns if c not in ("audio", "sentence"))
                raise AsrfairError(
                    f"--groups: dataset {corpus.name!r} has no column {column!r}; "
                    f"columns are: {have}"
                )
            empty = is_empty(frame[column])
            if empty.any():
                notes.append(
                    f"dropped {int(empty.sum()):,} of {len(frame):,} rows with empty {column}"
                )
                frame = frame.loc[~empty]
    return Corpus(corpus.name, frame.reset_index(drop=True), notes)


def normalise_sentences(corpus: Corpus, normalizer: Normalizer) -> Corpus:
    """Apply the text normaliser; rows whose sentence becomes empty are dropped and counted."""
    frame = corpus.frame.copy()
    frame["sentence"] = [normalizer(text) for text in frame["sentence"]]
    empty = frame["sentence"].str.strip() == ""
    notes = list(corpus.notes)
    if empty.any():
        notes.append(f"dropped {int(empty.sum()):,} rows whose sentence is empty after normalising")
    return Corpus(corpus.name, frame.loc[~empty].reset_index(drop=True), notes)


def parse_columns(text: str) -> dict[str, str]:
    """``--columns sentence=transcription,speaker=client`` as {canonical: source}."""
    mapping = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        canonical, sep, source = part.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise AsrfairError(f"--columns: {part!r} is not CANONICAL=SOURCE, e.g. sentence=text")
        mapping[canonical.strip()] = source.strip()
    return mapping


def map_columns(frame: pd.DataFrame, columns: dict[str, str], name: str) -> pd.DataFrame:
    """Rename a dataset's own column names to asrfair's (``sentence``, ``speaker``...)."""
    for canonical, source in columns.items():
        if source not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise AsrfairError(
                f"--columns: dataset {name!r} has no column {source!r}; columns are: {have}"
            )
        frame = frame.drop(columns=[canonical], errors="ignore").rename(columns={source: canonical})
    return frame


def resolve_aliases(
    frame: pd.DataFrame, aliases: dict[str, tuple[str, ...]], name: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rename the first alias present to its canonical name, unless the canonical is there.

    Where several aliases are present (``speaker_id`` beside ``client_id``), the order of
    ``aliases`` decides and a note says which was used, so that a report never rests on a
    silent choice; a canonical column (or one named by ``--columns``) is used without one."""
    notes = []
    for canonical, candidates in aliases.items():
        present = [a for a in dict.fromkeys((canonical, *candidates)) if a in frame.columns]
        if present and present[0] != canonical:
            frame = frame.rename(columns={present[0]: canonical})
            if len(present) > 1:
                others = ", ".join(repr(a) for a in present[1:])
                notes.append(
                    f"dataset {name!r}: {canonical} is column {present[0]!r}, not {others} "
                    f"(the first of {', '.join(candidates)}); choose another with "
                    f"--columns {canonical}=COLUMN"
                )
        if not present and canonical in ("audio", "sentence"):
            have = ", ".join(map(str, frame.columns))
            raise AsrfairError(
                f"dataset {name!r}: no {canonical} column (one of {', '.join(candidates)}); "
                f"columns are: {have}; name yours with --columns {canonical}=COLUMN"
            )
    return frame, notes


def resolve_audio_paths(frame: pd.DataFrame, root: Path, name: str) -> tuple[pd.DataFrame, str]:
    """Relative audio paths are taken from ``root``; paths that lead outside it (``../``,
    absolute) are still read, but counted in a note, since a dataset rarely means them."""
    base = root.resolve()
    paths = [(base / str(p)).resolve() for p in frame["audio"]]
    outside = [p for p in paths if not p.is_relative_to(base)]
    frame = frame.assign(audio=[str(p) for p in paths])
    if not outside:
        return frame, ""
    return frame, (
        f"{len(outside):,} audio path(s) of dataset {name!r} lead outside {base} "
        f"(first: {outside[0]}); they are read as given"
    )


def load_corpus(
    spec: str, datasets: Registry[DatasetLoader], columns: dict[str, str] | None = None
) -> Corpus:
    """``name[:arg]`` through the dataset plugins, e.g. ``commonvoice:/data/cv-corpus-17.0/fr``.

    ``columns`` maps asrfair's column names to the dataset's, for tables that name them otherwise;
    it is applied before the loader's aliases, so the user's choice wins.
    """
    loader, arg = datasets.resolve(spec, option="--dataset")
    loaded = loader(arg)
    corpus = loaded if isinstance(loaded, Corpus) else Corpus(spec, loaded)
    frame = map_columns(corpus.frame, columns or {}, corpus.name)
    frame, notes = resolve_aliases(frame, corpus.aliases, corpus.name)
    notes = list(corpus.notes) + notes
    if corpus.root is not None and "audio" in frame.columns:
        frame, note = resolve_audio_paths(frame, corpus.root, corpus.name)
        notes += [note] if note else []
    if "id" not in frame.columns and "audio" in frame.columns:
        frame = frame.assign(id=[Path(p).stem for p in frame["audio"]])
    return finish_corpus(corpus.name, frame, notes)
