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
