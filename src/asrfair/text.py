"""Text normalisers. References and hypotheses go through the same one, so
a difference in casing or punctuation is never counted as a recognition error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

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
