"""asrfair: does an ASR model serve some speakers worse than others?

    import asrfair
    result = asrfair.score(frame, groups=["gender"], speaker="client_id")
    result.by_group      # a DataFrame: one row per group, rates with interval ends

Plugins import ``hookimpl`` from here, as they would from any pluggy host. The Python API is
loaded on first use, so a plugin importing ``hookimpl`` pays nothing for it.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("asrfair")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("asrfair")

__all__ = [
    "GroupWER",
    "ScoreResult",
    "__version__",
    "audit",
    "compare",
    "evaluate_path",
    "hookimpl",
    "load_run",
    "score",
]


def __getattr__(name: str) -> object:
    if name in ("score", "compare", "audit", "load_run", "ScoreResult"):
        from asrfair import api

        return getattr(api, name)
    if name in ("evaluate_path", "GroupWER"):  # the Hugging Face evaluate/Trainer helpers
        from asrfair import hf

        return getattr(hf, name)
    raise AttributeError(f"module 'asrfair' has no attribute {name!r}")
