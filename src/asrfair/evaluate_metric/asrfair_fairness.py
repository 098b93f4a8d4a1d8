"""asrfair's per-group WER and CER as a Hugging Face ``evaluate`` metric.

Load it offline from the installed package::

    import asrfair, evaluate
    metric = evaluate.load(asrfair.evaluate_path())
    metric.compute(predictions=hyps, references=refs, speakers=spk, groups=gender,
                   grouping="gender")

The numbers come from ``asrfair.score`` (asrfair.hf.fairness_scores): the same alignment and
the same speaker-bootstrap intervals as ``asrfair score``.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from asrfair.hf import fairness_scores

_DESCRIPTION = """\
Word and character error rates overall and per group, each with a speaker-level bootstrap
interval (utterances of one speaker are resampled together), and each grouping's gap (highest
minus lowest group rate). Computed by asrfair, the ASR fairness evaluation tool.
"""

_INPUTS = """\
Args:
    predictions: ASR hypotheses, one string per utterance.
    references: reference transcripts, one per utterance.
    speakers: the speaker of each utterance (the bootstrap's resampling unit).
    groups: the group label of each utterance (e.g. "female").
    grouping: the name of that grouping, used in the keys (default "group").
    normalizer: an asrfair normaliser applied to both sides (default "none").
    bootstrap: bootstrap resamples (default 10000; 0 for no intervals).
    seed: random seed of the bootstrap (default 0).
    confidence: interval confidence level (default 0.95).
Returns:
    wer, cer, and for each group "wer_<grouping>=<group>" and "cer_<grouping>=<group>", each
    with "_low"/"_high" interval ends; "gap_<grouping>" (WER) and "gap_cer_<grouping>".
"""


class AsrfairFairness(evaluate.Metric):  # type: ignore[misc]  # evaluate has no type hints
    """The metric class ``evaluate.load`` finds in this script."""

    def _info(self) -> Any:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "speakers": datasets.Value("string"),
                    "groups": datasets.Value("string"),
                }
            ),
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        speakers: list[str],
        groups: list[str],
        grouping: str = "group",
        normalizer: str = "none",
        bootstrap: int = 10_000,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> dict[str, Any]:
        return fairness_scores(
            predictions,
            references,
            {grouping: groups},
            speakers,
            normalizer=normalizer,
            bootstrap=bootstrap,
            seed=seed,
            confidence=confidence,
        )
