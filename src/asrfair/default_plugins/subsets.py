"""Built-in training subsets: the notebook's all / 50% / male-only / female-only, and more."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asrfair import hookimpl
from asrfair.corpus import canonical_genders
from asrfair.errors import AsrfairError
from asrfair.registry import Register
from asrfair.subsets import Selector, SubsetFactory


def _column(table: pd.DataFrame, column: str, subset: str) -> pd.Series:
    if column not in table.columns:
        have = ", ".join(map(str, table.columns))
        raise AsrfairError(f"subset {subset!r} needs a {column!r} column; columns are: {have}")
    return table[column]


def _no_argument(name: str, arg: str | None) -> None:
    """``half:foo`` is a typo, not a request: a subset that takes no argument says so."""
    if arg is not None:
        raise AsrfairError(f"subset '{name}:{arg}': {name!r} takes no argument; write {name}")


def all_rows(arg: str | None) -> Selector:
    _no_argument("all", arg)
    return lambda table, seed: np.ones(len(table), dtype=bool)


def fraction(arg: str | None) -> Selector:
    """A seeded random share of the rows (``fraction:0.25``)."""
    try:
        share = float(arg) if arg is not None else float("nan")
    except ValueError:
        share = float("nan")
    if not 0.0 < share <= 1.0:
        raise AsrfairError(f"subset 'fraction:{arg}': F must be a number in (0, 1], e.g. 0.5")

    def select(table: pd.DataFrame, seed: int) -> np.ndarray:
        n_keep = round(share * len(table))
        chosen = np.random.default_rng(seed).choice(len(table), size=n_keep, replace=False)
        mask = np.zeros(len(table), dtype=bool)
        mask[chosen] = True
        return mask

    return select


def half(arg: str | None) -> Selector:
    _no_argument("half", arg)
    return fraction("0.5")


def gender(value: str) -> SubsetFactory:
    def factory(arg: str | None) -> Selector:
        _no_argument(value, arg)

        def select(table: pd.DataFrame, seed: int) -> np.ndarray:
            column = _column(table, "gender", value)
            return (canonical_genders(column) == value).to_numpy()

        return select

    return factory


def column_equals(arg: str | None) -> Selector:
    """``COLUMN=VALUE``: rows whose column holds that value (gender compares canonically)."""
    column, sep, value = (arg or "").partition("=")
    if not sep or not column:
        raise AsrfairError(f"subset 'column:{arg}': write it as COLUMN=VALUE, e.g. accents=fr-be")

    def select(table: pd.DataFrame, seed: int) -> np.ndarray:
        values = _column(table, column, f"{column}={value}")
        raw = values.astype(str).str.strip() == value
        if column == "gender":
            raw |= canonical_genders(values) == value
        return raw.to_numpy()

    return select


@hookimpl
def register_subsets(register: Register[SubsetFactory]) -> None:
    register("all", all_rows, help="every training row")
    register("half", half, help="a seeded random 50% of rows")
    register("fraction", fraction, help="fraction:F, a seeded random share F of rows")
    register("male", gender("male"), help="speakers whose gender is male (any CV spelling)")
    register("female", gender("female"), help="speakers whose gender is female (any CV spelling)")
    register("column", column_equals, help="COLUMN=VALUE (or column:COLUMN=VALUE)")
