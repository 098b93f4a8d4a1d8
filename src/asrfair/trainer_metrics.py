"""Per-group WER while a model trains: a ``compute_metrics`` for ``transformers.Trainer``.

It runs at every evaluation, so it is cheap by design: the same alignment and corpus-level rates
as ``asrfair score`` (the scoring stage), but point values only, with no bootstrap and no
permutation test; run ``asrfair score`` on the final predictions for intervals. It imports
neither torch nor the Python API: the Trainer hands it numpy arrays, and the processor it is
given does the decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from asrfair.errors import AsrfairError
from asrfair.groups import group_labels, parse_groupings
from asrfair.scoring import ScoreTable, score
from asrfair.text import identity


def utterance_table(
    predictions: Sequence[str],
    references: Sequence[str],
    groups: Mapping[str, Sequence[Any]],
    speakers: Sequence[Any] | None,
) -> pd.DataFrame:
    """The transcripts table asrfair scores; lengths must agree, or the error says which differs."""
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


def point_wer(table: ScoreTable) -> dict[str, float]:
    """``wer``, ``wer_GROUPING=GROUP`` for each group and ``gap_GROUPING`` (highest minus lowest
    group WER): corpus-level rates, rounded as the report rounds them; undefined ones left out."""
    errors = table.word_errors
    words = table.frame["w_n"].to_numpy()
    flat: dict[str, float] = {}
    if words.sum():
        flat["wer"] = round(float(errors.sum() / words.sum()), 10)
    for grouping in table.groupings:
        labels = group_labels(table.frame, grouping)
        rates = {}
        for label in sorted(labels.dropna().unique()):
            mask = (labels == label).fillna(False).to_numpy(dtype=bool)
            if words[mask].sum():
                rates[label] = round(float(errors[mask].sum() / words[mask].sum()), 10)
        flat.update({f"wer_{grouping}={label}": rate for label, rate in rates.items()})
        if len(rates) > 1:
            flat[f"gap_{grouping}"] = round(max(rates.values()) - min(rates.values()), 10)
    return flat


class GroupWER:
    """A ``compute_metrics`` for ``transformers.Trainer`` on a CTC model: WER overall and per
    group, and each grouping's gap, so the log shows whether fine-tuning closes or widens it.

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
        logits = np.asarray(logits)
        if logits.ndim == 2 and np.issubdtype(logits.dtype, np.integer):
            ids = np.where(logits == -100, pad, logits)  # token ids already (argmax in
            # preprocess_logits_for_metrics, as HF's CTC example does)
        elif logits.ndim == 3:
            ids = np.argmax(logits, axis=-1)
            ids[(logits == -100).all(axis=-1)] = pad  # frames added by batch padding
        else:
            raise AsrfairError(
                f"GroupWER: predictions of shape {logits.shape} ({logits.dtype}); give CTC "
                "logits (batch, frames, vocabulary) or token ids (batch, frames)"
            )
        labels = np.where(np.asarray(labels) == -100, pad, labels)
        hyps = self.processor.batch_decode(ids)
        refs = self.processor.batch_decode(labels, group_tokens=False)
        return list(hyps), list(refs)

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        hyps, refs = self.decode(eval_pred)
        frame = utterance_table(hyps, refs, self.groups, self.speakers)
        return point_wer(score(frame, identity, groupings=self.groupings))
