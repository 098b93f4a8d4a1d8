"""asrfair: does an ASR model serve some speakers worse than others?

Plugins import ``hookimpl`` from here, as they would from any pluggy host.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("asrfair")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("asrfair")

__all__ = ["__version__", "hookimpl"]
