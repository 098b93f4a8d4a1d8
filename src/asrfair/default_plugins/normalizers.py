"""Built-in text normalisers."""

from asrfair import hookimpl, text
from asrfair.registry import Register
from asrfair.text import Normalizer


@hookimpl
def register_normalizers(register: Register[Normalizer]) -> None:
    register("cv-french", text.cv_french, help="the notebook's Common Voice French rule")
    register("basic", text.basic, help="punctuation/symbols to spaces, lower-case, keep accents")
    register("lower", text.lower, help="lower-case only, as sclite's case-insensitive scoring")
    register("none", text.identity, help="leave text unchanged")
    register(
        "whisper-english",
        text.WhisperNormalizer(english=True),
        help="Whisper's English normaliser (transformers'), spellings from normalizer.json",
    )
    register(
        "whisper-basic",
        text.WhisperNormalizer(english=False),
        help="Whisper's basic normaliser (transformers'): any language",
    )
