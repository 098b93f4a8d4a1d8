"""One exception type for every user-facing mistake, and the file reader that raises it.

The CLI turns an ``AsrfairError`` into a single line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class AsrfairError(Exception):
    """Bad input: the message names the file, row or option and says how to fix it."""


def read_json(path: Path, fix: str) -> Any:
    """A JSON file that asrfair wrote; a truncated or edited one is a one-line error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AsrfairError(f"{path}: not UTF-8 (offset {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise AsrfairError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {fix}"
        ) from None
