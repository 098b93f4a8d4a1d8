"""One exception type for every user-facing mistake.

The CLI turns an ``AsrfairError`` into a single line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""


class AsrfairError(Exception):
    """Bad input: the message names the file, row or option and says how to fix it."""
