"""The name tables that registration hooks fill.

The core, not the plugins, owns each table: that is where a duplicate name is
refused (naming both plugins) and an unknown name is answered with the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from asrfair.errors import AsrfairError

T = TypeVar("T")


class Register(Protocol):
    """The callable a registration hook receives."""

    def __call__(self, name: str, obj: object, *, help: str = "") -> None: ...


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str
    help: str


class Registry(Generic[T]):
    """Names of one kind (``metric``, ``subset``...) mapped to plugin objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, obj: T, *, help: str = "", plugin: str = "?") -> None:
        if not name or ":" in name:
            raise AsrfairError(f"plugin {plugin!r} registered an invalid {self.kind} name {name!r}")
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
            return self._entries[name].obj
        except KeyError:
            where = f"{option}: " if option else ""
            known = ", ".join(self.names()) or "(none)"
            raise AsrfairError(f"{where}unknown {self.kind} {name!r}; known: {known}") from None

    def resolve(self, spec: str, *, option: str = "") -> tuple[T, str | None]:
        """Split ``name:arg`` and look ``name`` up; the argument goes to the plugin."""
        name, sep, arg = spec.partition(":")
        return self.get(name.strip(), option=option), (arg if sep else None)
