"""The name tables that registration hooks fill.

The core, not the plugins, owns each table: that is where a duplicate name is
refused (naming both plugins) and an unknown name is answered with the known ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from asrfair.errors import AsrfairError

T = TypeVar("T")
K = TypeVar("K", contravariant=True)


class Register(Protocol[K]):
    """The callable a registration hook receives, typed by the kind it registers
    (``Register[Metric]``), so that mypy checks a plugin's callable against that kind."""

    def __call__(self, name: str, obj: K, *, help: str = "") -> None: ...


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str
    help: str


BUILTIN = "asrfair.default_plugins."


def _guarded(kind: str, entry: Entry[Any]) -> Callable[..., Any]:
    """A third-party plugin's callable whose crash is a one-line error naming the plugin,
    so that a broken plugin cannot end asrfair in a traceback that looks like asrfair's."""

    @functools.wraps(entry.obj)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return entry.obj(*args, **kwargs)
        except AsrfairError:
            raise
        except Exception as exc:
            raise AsrfairError(
                f"{kind} {entry.name!r} of plugin {entry.plugin!r} failed "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "report it to the plugin's authors, or block it with ASRFAIR_BLOCK_PLUGINS"
            ) from exc

    return call


class Registry(Generic[T]):
    """Names of one kind (``metric``, ``subset``...) mapped to plugin objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, *, help: str = "", plugin: str = "?") -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise AsrfairError(f"plugin {plugin!r} registered an invalid {self.kind} name {name!r}")
        if not callable(obj):
            raise AsrfairError(
                f"plugin {plugin!r} registered {self.kind} {name!r} as a {type(obj).__name__}, "
                f"which cannot be called; register a function"
            )
        if name in self._entries:
            first = self._entries[name].plugin
            raise AsrfairError(
                f"{self.kind} {name!r} is registered by both {first!r} and {plugin!r}; "
                f"block one with ASRFAIR_BLOCK_PLUGINS"
            )
        self._entries[name] = Entry(name, obj, plugin, help)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, *, option: str = "") -> T:
        """Look a name up; ``option`` (e.g. ``--metrics``) is named in the error."""
        try:
            entry = self._entries[name]
        except KeyError:
            where = f"{option}: " if option else ""
            known = ", ".join(self.names()) or "(none)"
            raise AsrfairError(f"{where}unknown {self.kind} {name!r}; known: {known}") from None
        if entry.plugin.startswith(BUILTIN) or not callable(entry.obj):
            return entry.obj  # a built-in's exception is asrfair's bug: keep its traceback
        return cast(T, _guarded(self.kind, entry))

    def resolve(self, spec: str, *, option: str = "") -> tuple[T, str | None]:
        """Split ``name:arg`` and look ``name`` up; the argument goes to the plugin."""
        name, sep, arg = spec.partition(":")
        return self.get(name.strip(), option=option), (arg if sep else None)
