"""Grouping specs: ``gender`` names one column, ``gender*age`` the intersection of two.

Every stage that reads a spec (the data stage, the split, scoring, metrics, the run folder,
the CLI and the Python API) goes through these functions, so the syntax lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from asrfair.errors import AsrfairError

SEPARATOR = "*"


def parse_groupings(groups: str | Sequence[str]) -> list[str]:
    """``"gender,age*gender"`` as the CLI writes it, or ``["gender", "age*gender"]``: each spec
    once, in order, with spaces around names removed. An empty part is a typo, not a column."""
    items = groups.split(",") if isinstance(groups, str) else list(groups)
    specs: list[str] = []
    for item in items:
        if not str(item).strip():
            continue
        parts = [p.strip() for p in str(item).split(SEPARATOR)]
        if not all(parts):
            raise AsrfairError(
                f"--groups: {str(item).strip()!r} has an empty column name; write COLUMN or "
                f"COLUMN{SEPARATOR}COLUMN, e.g. gender{SEPARATOR}age"
            )
        specs.append(SEPARATOR.join(parts))
    return list(dict.fromkeys(specs))


def columns_of(grouping: str) -> list[str]:
    """The columns one spec reads (``gender*age`` reads gender and age)."""
    return grouping.split(SEPARATOR)


def all_columns(groupings: Iterable[str]) -> list[str]:
    """The columns behind several specs, each once, in order of first use."""
    return list(dict.fromkeys(part for g in groupings for part in columns_of(g)))


def intersect(groupings: Sequence[str]) -> str:
    """One spec crossing several (for a split stratified by gender and age together)."""
    return SEPARATOR.join(groupings)


def group_labels(frame: pd.DataFrame, grouping: str) -> pd.Series:
    """Labels for a grouping; ``a*b`` is intersectional (``female*fr-be``). Empty -> NA."""
    labels: pd.Series | None = None
    for part in columns_of(grouping):
        values = frame[part].astype("string").str.strip()
        values = values.where(values != "")
        labels = values if labels is None else labels + SEPARATOR + values
    if labels is None:
        raise AsrfairError(f"--groups: {grouping!r} names no column")
    return labels
