"""Writing files so that a good one is never left truncated.

A report, ``metrics.json`` or cache entry is written to a temporary file beside its
target and renamed into place only once it is complete: a full disk, a crash or a
kill leaves the previous file as it was, and the temporary file is removed. A full
disk is a user's problem to fix, so it becomes an ``AsrfairError`` that says so.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asrfair.errors import AsrfairError

OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT}


def is_out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE


UNWRITABLE = (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_unwritable(exc: BaseException) -> bool:
    """A path the user chose that cannot be written: read-only, a folder, under a file."""
    return isinstance(exc, UNWRITABLE) or (isinstance(exc, OSError) and exc.errno == errno.EROFS)


def out_of_space(path: Path | str, keep: str = "") -> AsrfairError:
    """The one-line error for a full disk (or quota) while writing ``path``."""
    return AsrfairError(
        f"{path}: no space left on device; free space and run again"
        + (f" ({keep})" if keep else "")
    )


def unique_tag() -> str:
    """This process, told apart from every other one writing to a shared folder: process ids
    repeat across the nodes of a cluster, so the host is part of it (and a random part, for
    two writers in one process)."""
    host = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in socket.gethostname())
    return f"{host}.{os.getpid()}.{secrets.token_hex(3)}"


def temp_path(path: Path) -> Path:
    """A name beside ``path`` that no other process uses and that keeps its suffix."""
    return path.with_name(f".{path.stem}.{unique_tag()}.tmp{path.suffix}")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    On any failure the temporary file is removed and ``path`` is untouched.
    """
    if path.is_symlink():  # write the file the link points at, and keep the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_out_of_space(exc):
            raise out_of_space(path, "the previous file, if any, is unchanged") from None
        if isinstance(exc, FileNotFoundError) and exc.filename == str(tmp):  # /proc, /sys...
            raise AsrfairError(
                f"{path}: no file can be created in {path.parent} ({exc.strerror}); "
                "choose another path"
            ) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8, all or nothing."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: object) -> None:
    """Indented UTF-8 JSON with a final newline, all or nothing."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_lines(path: Path) -> list[str]:
    """The lines of a JSONL file that asrfair wrote. Lines end at "\n" only: a JSON string may
    hold U+2028 or U+0085, at which ``str.splitlines`` would cut a record in two."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AsrfairError(f"{path}: not UTF-8 (offset {exc.start}); the file is damaged") from None
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_toml(path: Path, named: str, what: str) -> dict[str, Any]:
    """A TOML file of options (``--config``, a study file); ``named`` is how messages name it
    (``--config audit.toml``) and ``what`` says what belongs there when a folder is given."""
    if path.is_dir():
        raise AsrfairError(f"{named}: a folder; give {what}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AsrfairError(f"{named}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AsrfairError(f"{named}: not valid TOML ({exc})") from None
