"""Text normalisers. References and hypotheses go through the same one, so
a difference in casing or punctuation is never counted as a recognition error.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

Normalizer = Callable[[str], str]  # applied alike to references and hypotheses

_SPACES = re.compile(r"\s+")
# Typographic apostrophes and look-alikes that French text uses for "'".
_APOSTROPHES = str.maketrans(dict.fromkeys("’‘ʼ′`´ʹ", "'"))
# The notebook's character set: everything outside it is deleted, not spaced.
_CV_FRENCH_DROP = re.compile(r"[^a-zàâäçèéêëîïôœùûüÿ' \t\n]")


def collapse_spaces(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def cv_french(text: str) -> str:
    """The lab notebook's rule for Common Voice French, kept so its numbers can be reproduced.

    NFC first, so a decomposed ``e`` + combining accent survives as ``é`` instead of being
    stripped to ``e``.
    """
    text = unicodedata.normalize("NFC", text).lower().translate(_APOSTROPHES)
    return collapse_spaces(_CV_FRENCH_DROP.sub("", text))


def basic(text: str) -> str:
    """Language-neutral: punctuation and symbols become spaces, case folds, accents stay."""
    text = unicodedata.normalize("NFC", text).lower()
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return collapse_spaces(spaced)


def lower(text: str) -> str:
    """Case folds and nothing else: sclite's case-insensitive scoring (its ``-e utf-8 babel_*``
    case conversion), where punctuation tokens such as ``(`` or ``_`` are words to score."""
    return collapse_spaces(unicodedata.normalize("NFC", text).lower())


def identity(text: str) -> str:
    """No change at all: for transcripts that were normalised upstream."""
    return text


class WhisperNormalizer:
    """Whisper's own normalisers, as transformers ships them (``english_normalizer``), because a
    Whisper WER means little without them. transformers is imported on first use, so that
    ``score`` with any other normaliser never loads it.

    ``english`` (EnglishTextNormalizer) also wants a British-to-American spelling table; an
    audit hands it the checkpoint's ``normalizer.json`` (``for_checkpoint``). Without that file
    (``score``, or a checkpoint saved without it) the table is empty and spellings stay as they
    are: ``colour`` and ``color`` are different words. ``basic`` (BasicTextNormalizer) needs none.
    """

    def __init__(self, *, english: bool, spelling: dict[str, str] | None = None) -> None:
        self.english = english
        self.spelling = dict(spelling or {})
        self._normalize: Callable[[str], str] | None = None

    def __call__(self, text: str) -> str:
        if self._normalize is None:
            from transformers.models.whisper.english_normalizer import (
                BasicTextNormalizer,
                EnglishTextNormalizer,
            )

            self._normalize = (
                EnglishTextNormalizer(self.spelling)  # type: ignore[no-untyped-call]
                if self.english
                else BasicTextNormalizer()
            )
        return collapse_spaces(self._normalize(text))

    def for_checkpoint(self, model: str) -> Normalizer:
        """The English normaliser with the spelling table saved beside ``model``, if any."""
        path = Path(model) / "normalizer.json"
        if not self.english or not path.is_file():
            return self
        return WhisperNormalizer(english=True, spelling=json.loads(path.read_text("utf-8")))


def for_checkpoint(normalize: Normalizer, model: str) -> Normalizer:
    """An audit's normaliser, given the audited checkpoint where it reads files from it
    (Whisper's English spelling table); any other normaliser comes back as it is."""
    bind = getattr(normalize, "for_checkpoint", None)
    return bind(model) if callable(bind) else normalize
