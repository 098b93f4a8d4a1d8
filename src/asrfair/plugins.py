"""The plugin manager: built-ins and third-party plugins load the same way.

``Plugins`` wraps one pluggy manager and answers name lookups for every kind. The
CLI builds one from the installed entry points (``installed()``) and hands it to the
stages; a test or a notebook builds its own (``Plugins.with_builtins(MyPlugin())``)
and passes it in, so nothing mutates a process-wide manager.

Entry points of the group ``asrfair`` are read on first use, not at import, so
``asrfair --version`` stays fast. ``DEFAULT_PLUGINS`` mirrors the built-in entry
points so that a source checkout with no installed metadata still works.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from asrfair import __version__, hookspecs
from asrfair.corpus import DatasetLoader
from asrfair.errors import AsrfairError
from asrfair.metrics import Metric, split_metric_spec
from asrfair.registry import Registry
from asrfair.report import Exporter
from asrfair.subsets import Selector, SubsetFactory, normalise_spec
from asrfair.text import Normalizer

ENTRY_POINT_GROUP = "asrfair"
BLOCK_ENV = "ASRFAIR_BLOCK_PLUGINS"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "asrfair.default_plugins.normalizers",
    "asrfair.default_plugins.subsets",
    "asrfair.default_plugins.metrics",
    "asrfair.default_plugins.exporters",
    "asrfair.default_plugins.datasets",
)
KINDS: dict[str, str] = {  # kind -> its registration hook
    "dataset": "register_datasets",
    "normalizer": "register_normalizers",
    "subset": "register_subsets",
    "metric": "register_metrics",
    "exporter": "register_exporters",
}


def blocked_names() -> list[str]:
    """Plugin names in ``ASRFAIR_BLOCK_PLUGINS`` (comma-separated)."""
    return [n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]


def new_manager() -> pluggy.PluginManager:
    """A manager that knows asrfair's hooks and honours ``ASRFAIR_BLOCK_PLUGINS``."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in blocked_names():
        pm.set_blocked(name)
    return pm


def register_builtins(pm: pluggy.PluginManager) -> None:
    """The built-ins go in with the same ``pm.register`` call as any plugin."""
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        if not pm.is_blocked(module_name) and not pm.is_registered(module):
            pm.register(module, name=module_name)
    pm.check_pending()


@dataclass
class Plugins:
    """A built manager, each plugin's distribution, and why any plugin failed to load."""

    pm: pluggy.PluginManager
    errors: list[str] = field(default_factory=list)
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (pkg, ver)

    @classmethod
    def with_builtins(cls, *extra: object) -> Plugins:
        """The built-ins plus the given plugin objects (modules or instances), and no entry
        points: what a test or a notebook hands to the API to try a plugin out."""
        pm = new_manager()
        register_builtins(pm)
        for plugin in extra:
            name = getattr(plugin, "__name__", type(plugin).__name__)
            pm.register(plugin, name=name if not pm.has_plugin(name) else f"{name}-{id(plugin)}")
        pm.check_pending()
        return cls(pm)

    # -- the name tables, one per kind ------------------------------------------
    def datasets(self) -> Registry[DatasetLoader]:
        return self._collect("dataset")

    def normalizers(self) -> Registry[Normalizer]:
        return self._collect("normalizer")

    def subsets(self) -> Registry[SubsetFactory]:
        return self._collect("subset")

    def metrics(self) -> Registry[Metric]:
        return self._collect("metric")

    def exporters(self) -> Registry[Exporter]:
        return self._collect("exporter")

    # -- resolving the names a user typed ----------------------------------------
    def selector(self, spec: str, *, option: str = "--train-subset") -> Selector:
        """The selector for a subset spec (``half``, ``gender=female``, ``column:age=twenties``)."""
        factory, arg = self.subsets().resolve(normalise_spec(spec), option=option)
        return factory(arg)

    def chosen_metrics(self, names: Iterable[str]) -> dict[str, Metric]:
        """The metrics named by ``--metrics``, keyed by their text (``name:key=value``, options
        included), in the order given; a typo, or one metric named twice with different options,
        fails before any work."""
        table = self.metrics()
        chosen: dict[str, Metric] = {}
        seen: dict[str, str] = {}
        for spec in names:
            name, _ = split_metric_spec(spec)
            if seen.get(name) == spec.strip():
                continue  # "wer,wer": the same metric, said twice
            if name in seen:
                raise AsrfairError(
                    f"--metrics: metric {name!r} is named twice ({seen[name]}, {spec.strip()}); "
                    "name it once, with all its options"
                )
            seen[name] = spec.strip()
            chosen[spec.strip()] = table.get(name, option="--metrics")
        return chosen

    def _collect(self, kind: str) -> Registry[Any]:
        """Run every implementation of one registration hook into a fresh table.

        Each implementation is called on its own so the table knows which plugin
        registered each name (a duplicate error names both).
        """
        hook_name = KINDS[kind]
        registry: Registry[Any] = Registry(kind)
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # built-ins first

            def register(
                name: str, obj: object, *, help: str = "", _plugin: str = impl.plugin_name
            ) -> None:
                registry.register(name, obj, help=help, plugin=_plugin)

            run_hook(impl, hook_name, register=register)
        return registry

    # -- what ``asrfair plugins`` shows ------------------------------------------
    def info(self) -> list[dict[str, Any]]:
        """Each registered plugin with its distribution version, hooks and registered names.

        Each kind's table is collected once for all plugins: collecting runs every plugin's
        registration hook (and names a failing one on stderr), so once per plugin would run
        and warn as many times as there are plugins."""
        registered: dict[str, list[dict[str, str]]] = {}
        for kind in KINDS:
            for entry in self._collect(kind).entries():
                row = {"kind": kind, "name": entry.name, "help": entry.help}
                registered.setdefault(entry.plugin, []).append(row)
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: str(item[0])):
            if plugin is None:  # blocked
                continue
            package, version = self.distributions.get(name, ("asrfair", __version__))
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            rows.append(
                {
                    "name": name,
                    "package": package,
                    "version": version,
                    "hooks": hooks,
                    "registers": registered.get(name, []),
                }
            )
        return rows

    def add_commands(self, app: Any) -> None:
        """Let each plugin add its commands to a typer app (``register_commands``)."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            run_hook(impl, "register_commands", app=app)


def _load_entry_point(pm: pluggy.PluginManager, ep: Any, loaded: Plugins) -> None:
    """Register one installed plugin; one that fails to import (SystemExit included) or whose
    hooks match no hookspec is named in ``loaded.errors`` and skipped, so that a broken
    third-party plugin cannot take asrfair down."""
    try:
        plugin = ep.load()
    except (Exception, SystemExit) as exc:
        loaded.errors.append(
            f"plugin {ep.name!r} ({ep.value}) failed to import and was skipped: "
            f"{type(exc).__name__}: {exc}"
        )
        return
    try:
        pm.register(plugin, name=ep.name)
        pm.check_pending()  # the plugins before this one passed: this checks the new one
    except pluggy.PluginValidationError as exc:
        if pm.has_plugin(ep.name):
            pm.unregister(name=ep.name)
        loaded.errors.append(f"plugin {ep.name!r} ({ep.value}) was skipped: {exc}")
        return
    if ep.dist is not None:
        loaded.distributions[ep.name] = (ep.dist.name, ep.dist.version)


@functools.cache
def installed() -> Plugins:
    """The plugins installed in this environment (entry points), built once per process."""
    pm = new_manager()
    loaded = Plugins(pm)
    names = set(DEFAULT_PLUGINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.add(ep.name)
        if not pm.is_blocked(ep.name) and not pm.has_plugin(ep.name):
            _load_entry_point(pm, ep, loaded)
    register_builtins(pm)
    unknown = sorted(set(blocked_names()) - names)
    if unknown:  # a typo would otherwise leave the plugin running, silently
        loaded.errors.append(
            f"{BLOCK_ENV} names {', '.join(map(repr, unknown))}, which no installed plugin is "
            f"called; plugin names: {', '.join(sorted(names))}"
        )
    return loaded


def run_hook(impl: Any, hook_name: str, **kwargs: Any) -> None:
    """Call one plugin's hook; a third-party plugin that raises is named on stderr and skipped
    (a built-in that raises is a bug, and keeps its traceback). An AsrfairError, such as a
    duplicate name, is the user's to fix and propagates."""
    try:
        impl.function(**kwargs)
    except AsrfairError:
        raise
    except (Exception, SystemExit) as exc:
        if impl.plugin_name in DEFAULT_PLUGINS:
            raise
        print(
            f"warning: plugin {impl.plugin_name!r} failed in {hook_name} and was skipped: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
