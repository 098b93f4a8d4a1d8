"""asrfair inside the Hugging Face loop: an ``evaluate`` metric and a Trainer ``compute_metrics``.

Both go through ``asrfair.score``, so a per-group WER logged during fine-tuning, one from
``evaluate`` and one from ``asrfair score`` come from the same alignment and the same rates.
Neither imports torch or transformers: the Trainer helper reads the numpy arrays the Trainer
hands it, and the processor it is given does the decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files as package_files
from typing import Any

import numpy as np
import pandas as pd

from asrfair.api import ScoreResult, score
from asrfair.errors import AsrfairError
from asrfair.groups import parse_groupings

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


def _rows(
    predictions: Sequence[str],
    references: Sequence[str],
    groups: Mapping[str, Sequence[Any]],
    speakers: Sequence[Any] | None,
) -> pd.DataFrame:
    """The transcripts table ``asrfair.score`` reads; lengths must agree, or say which differs."""
    columns: dict[str, Sequence[Any]] = {"ref": references, "hyp": predictions, **groups}
    if speakers is not None:
        columns["speaker"] = speakers
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise AsrfairError(
            f"predictions, references, groups and speakers differ in length: {shown}"
        )
    frame = pd.DataFrame({name: list(values) for name, values in columns.items()})
    frame.insert(0, "id", [f"u{i}" for i in range(len(frame))])
    return frame


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
    frame = _rows(predictions, references, groups, speakers)
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


class GroupWER:
    """A ``compute_metrics`` for ``transformers.Trainer`` on a CTC model: WER overall and per
    group, and each grouping's gap, so the log shows whether fine-tuning closes or widens it.

    Cheap by design, since it runs at every evaluation: point rates only, no bootstrap and no
    permutation test (run ``asrfair score`` on the final predictions for intervals).
    ``groups`` and ``speakers`` hold one value per row of the eval set, in its order.
    """

    def __init__(
        self,
        processor: Any,
        groups: Mapping[str, Sequence[Any]],
        speakers: Sequence[Any] | None = None,
        *,
        groupings: str | Sequence[str] | None = None,
    ) -> None:
        self.processor = processor
        self.groups = {name: list(values) for name, values in groups.items()}
        self.speakers = None if speakers is None else list(speakers)
        self.groupings = parse_groupings(groupings if groupings is not None else list(groups))

    def decode(self, eval_pred: Any) -> tuple[list[str], list[str]]:
        """Greedy CTC hypotheses and the label texts; Trainer pads both with -100."""
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        pad = self.processor.tokenizer.pad_token_id
        ids = np.argmax(logits, axis=-1)
        ids[(np.asarray(logits) == -100).all(axis=-1)] = pad  # frames added by batch padding
        labels = np.where(np.asarray(labels) == -100, pad, labels)
        hyps = self.processor.batch_decode(ids)
        refs = self.processor.batch_decode(labels, group_tokens=False)
        return list(hyps), list(refs)

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        hyps, refs = self.decode(eval_pred)
        frame = _rows(hyps, refs, self.groups, self.speakers)
        result = score(
            frame,
            groups=self.groupings,
            speaker="speaker" if self.speakers is not None else None,
            metrics=("wer", "group_wer"),
            bootstrap=0,
            permutations=0,
        )
        flat = flat_rates(result, ("wer",), intervals=False)
        return {key: value for key, value in flat.items() if value is not None}
