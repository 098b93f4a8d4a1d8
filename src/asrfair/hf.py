"""asrfair inside the Hugging Face loop: an ``evaluate`` metric and a Trainer ``compute_metrics``.

The metric goes through ``asrfair.score``; the Trainer helper (``GroupWER``, in
``trainer_metrics``) through the same scoring stage; so a per-group WER logged during
fine-tuning, one from ``evaluate`` and one from ``asrfair score`` come from the same alignment
and the same corpus-level rates. Neither imports torch or transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files as package_files
from typing import Any

from asrfair.api import ScoreResult, score
from asrfair.groups import parse_groupings
from asrfair.trainer_metrics import GroupWER, utterance_table

__all__ = ["GroupWER", "evaluate_path", "fairness_scores", "flat_rates"]

EVALUATE_METRIC_FILE = "evaluate_metric/asrfair_fairness.py"


def evaluate_path() -> str:
    """The metric script shipped with the package, for ``evaluate.load(evaluate_path())``.

    A local file path: ``evaluate`` loads it without the hub (works with HF_HUB_OFFLINE=1).
    """
    return str(package_files("asrfair") / EVALUATE_METRIC_FILE)


def flat_rates(result: ScoreResult, metrics: Sequence[str], *, intervals: bool) -> dict[str, Any]:
    """One flat dict, as ``evaluate`` and the Trainer log want: ``wer``, ``wer_gender=female``,
    ``gap_gender`` (highest minus lowest group WER; ``gap_cer_gender`` for CER), and with
    ``intervals`` each rate's ``_low``/``_high`` ends (None where no interval was computed)."""
    data = result.report.data
    flat: dict[str, Any] = {}

    def put(key: str, entry: dict[str, Any], metric: str) -> None:
        flat[key] = entry.get(metric)
        if intervals:
            low, high = entry.get(f"{metric}_ci") or (None, None)
            flat[f"{key}_low"], flat[f"{key}_high"] = low, high

    for metric in metrics:
        put(metric, data["overall"], metric)
    for grouping, entries in data["groups"].items():
        for metric in metrics:
            for entry in entries:
                put(f"{metric}_{grouping}={entry['group']}", entry, metric)
            rates = [e[metric] for e in entries if e.get(metric) is not None]
            gap_key = f"gap_{grouping}" if metric == "wer" else f"gap_{metric}_{grouping}"
            flat[gap_key] = round(max(rates) - min(rates), 10) if len(rates) > 1 else None
    return flat


def fairness_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    groups: Mapping[str, Sequence[Any]],
    speakers: Sequence[Any] | None = None,
    *,
    groupings: str | Sequence[str] | None = None,
    normalizer: str = "none",
    bootstrap: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Per-group WER and CER with speaker-bootstrap intervals, flat (what the metric returns).

    ``groups`` maps a grouping name to one label per utterance; ``groupings`` (default: its
    keys) may combine them, as ``gender*age``. No gap tests are run: the gap is a point value.
    """
    chosen = parse_groupings(groupings if groupings is not None else list(groups))
    frame = utterance_table(predictions, references, groups, speakers)
    result = score(
        frame,
        groups=chosen,
        speaker="speaker" if speakers is not None else None,
        normalizer=normalizer,
        metrics=("wer", "cer", "group_wer", "group_cer"),
        bootstrap=bootstrap,
        permutations=0,
        seed=seed,
        confidence=confidence,
    )
    return flat_rates(result, ("wer", "cer"), intervals=True)
