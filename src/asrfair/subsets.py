"""Training subsets: which rows of the training side a model is fine-tuned on.

A subset plugin registers a factory; ``factory(arg)`` returns a selector that
maps ``(table, seed)`` to a boolean mask, so a seeded subset is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from asrfair.errors import AsrfairError

Selector = Callable[[pd.DataFrame, int], np.ndarray]
SubsetFactory = Callable[[str | None], Selector]


def normalise_spec(spec: str) -> str:
    """``gender=female`` is shorthand for the ``column`` subset: ``column:gender=female``."""
    name = spec.partition(":")[0]
    if "=" in name:
        return f"column:{spec}"
    return spec


def select_subset(
    table: pd.DataFrame, selector: Selector, spec: str, *, seed: int = 0
) -> pd.DataFrame:
    """Rows of ``table`` chosen by ``selector`` (resolved from ``spec``, which errors name);
    an empty choice is an error, so a typo in a value cannot train on nothing."""
    mask = np.asarray(selector(table, seed), dtype=bool)
    if mask.shape != (len(table),):
        raise AsrfairError(f"subset {spec!r} returned a mask of shape {mask.shape}, not rows")
    if not mask.any():
        raise AsrfairError(f"--train-subset {spec!r} selects no rows out of {len(table)}")
    return table.loc[mask]
