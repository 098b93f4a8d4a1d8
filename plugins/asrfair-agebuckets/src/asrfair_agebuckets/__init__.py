"""Age-bucket subsets and sentence error rate, as an installable asrfair plugin."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asrfair.plugin import (
    AsrfairError,
    Metric,
    MetricContext,
    Register,
    Selector,
    SubsetFactory,
    hookimpl,
)

# Common Voice's age values, grouped so that each bucket has enough speakers.
BUCKETS = {
    "young": ("teens", "twenties"),
    "middle": ("thirties", "forties"),
    "older": ("fifties", "sixties", "seventies", "eighties", "nineties"),
}


def age_subset(arg: str | None) -> Selector:
    """``age:BUCKET``: training rows whose Common Voice age falls in the bucket."""
    if arg not in BUCKETS:
        raise AsrfairError(f"subset 'age:{arg}': choose one of {', '.join(BUCKETS)}")
    ages = BUCKETS[arg]

    def select(table: pd.DataFrame, seed: int) -> np.ndarray:
        if "age" not in table.columns:
            raise AsrfairError("subset 'age' needs an 'age' column")
        return table["age"].astype(str).str.strip().isin(ages).to_numpy()

    return select


def sentence_error_rate(ctx: MetricContext) -> None:
    """Share of utterances with any word error, overall and per group, with intervals."""
    wrong = (ctx.table.word_errors > 0).astype(float)
    one = np.ones(len(wrong))
    ctx.record_rate("ser", wrong, one, unit_name="utterances")
    for grouping in ctx.table.groupings:
        ctx.record_rate("ser", wrong, one, grouping=grouping, unit_name="utterances")


@hookimpl
def register_subsets(register: Register[SubsetFactory]) -> None:
    register("age", age_subset, help="age:young|middle|older (Common Voice age buckets)")


@hookimpl
def register_metrics(register: Register[Metric]) -> None:
    register("ser", sentence_error_rate, help="sentence error rate with speaker intervals")
