"""The plugin manager: built-ins and third-party plugins load the same way.

Entry points of the group ``asrfair`` are read on first use, not at import, so
``asrfair --version`` stays fast. ``DEFAULT_PLUGINS`` mirrors the built-in entry
points so that a source checkout with no installed metadata still works.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from asrfair import __version__, hookspecs
from asrfair.errors import AsrfairError
from asrfair.registry import Registry

if TYPE_CHECKING:
    from asrfair.metrics import Metric
    from asrfair.report import Exporter
    from asrfair.subsets import SubsetFactory

ENTRY_POINT_GROUP = "asrfair"
BLOCK_ENV = "ASRFAIR_BLOCK_PLUGINS"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "asrfair.default_plugins.normalizers",
    "asrfair.default_plugins.subsets",
    "asrfair.default_plugins.metrics",
    "asrfair.default_plugins.exporters",
    "asrfair.default_plugins.datasets",
)

Normalizer = Callable[[str], str]
DatasetLoader = Callable[[str | None], Any]


@dataclass
class LoadedPlugins:
    """The manager, each plugin's distribution, and why any plugin failed to load."""

    pm: pluggy.PluginManager
    errors: list[str]
    distributions: dict[str, tuple[str, str]]  # plugin name -> (package, version)


def blocked_names() -> list[str]:
    """Plugin names in ``ASRFAIR_BLOCK_PLUGINS`` (comma-separated)."""
    return [n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]


def _register_module(pm: pluggy.PluginManager, module: ModuleType, name: str) -> None:
    if pm.is_blocked(name) or pm.is_registered(module):
        return
    pm.register(module, name=name)


@functools.cache
def load_plugins() -> LoadedPlugins:
    """Build the manager once per process; a plugin that fails to import is named and skipped."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in blocked_names():
        pm.set_blocked(name)
    errors: list[str] = []
    distributions: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        # A broken third-party plugin must not take asrfair down: one that fails to import
        # (SystemExit included) or whose hooks do not match a hookspec is named and skipped.
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:
            errors.append(
                f"plugin {ep.name!r} ({ep.value}) failed to import and was skipped: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        try:
            pm.register(plugin, name=ep.name)
            pm.check_pending()  # the plugins before this one passed: this checks the new one
        except pluggy.PluginValidationError as exc:
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            errors.append(f"plugin {ep.name!r} ({ep.value}) was skipped: {exc}")
            continue
        if ep.dist is not None:
            distributions[ep.name] = (ep.dist.name, ep.dist.version)
    for module_name in DEFAULT_PLUGINS:
        _register_module(pm, importlib.import_module(module_name), module_name)
    pm.check_pending()
    return LoadedPlugins(pm, errors, distributions)


def get_plugin_manager() -> pluggy.PluginManager:
    return load_plugins().pm


def _collect(kind: str, hook_name: str) -> Registry[Any]:
    """Run every implementation of one registration hook into a fresh table.

    Each implementation is called on its own so the table knows which plugin
    registered each name (a duplicate error names both).
    """
    registry: Registry[Any] = Registry(kind)
    caller = getattr(get_plugin_manager().hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order: built-ins first

        def register(
            name: str, obj: object, *, help: str = "", _plugin: str = impl.plugin_name
        ) -> None:
            registry.register(name, obj, help=help, plugin=_plugin)

        run_hook(impl, hook_name, register=register)
    return registry


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


def normalizers() -> Registry[Normalizer]:
    return _collect("normalizer", "register_normalizers")


def subsets() -> Registry[SubsetFactory]:
    return _collect("subset", "register_subsets")


def metrics() -> Registry[Metric]:
    return _collect("metric", "register_metrics")


def exporters() -> Registry[Exporter]:
    return _collect("exporter", "register_exporters")


def datasets() -> Registry[DatasetLoader]:
    return _collect("dataset", "register_datasets")


def plugin_info() -> list[dict[str, Any]]:
    """Each registered plugin with its distribution version and the hooks it implements."""
    loaded = load_plugins()
    rows = []
    for name, plugin in sorted(loaded.pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:  # blocked
            continue
        package, version = loaded.distributions.get(name, ("asrfair", __version__))
        hooks = sorted(caller.name for caller in loaded.pm.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "package": package,
                "version": version,
                "hooks": hooks,
                "registers": registered_by(name),
            }
        )
    return rows


def registered_by(plugin: str) -> list[dict[str, str]]:
    """What one plugin put in each name table, with the help text it gave."""
    tables: dict[str, Registry[Any]] = {
        "dataset": datasets(),
        "normalizer": normalizers(),
        "subset": subsets(),
        "metric": metrics(),
        "exporter": exporters(),
    }
    return [
        {"kind": kind, "name": entry.name, "help": entry.help}
        for kind, registry in tables.items()
        for entry in registry.entries()
        if entry.plugin == plugin
    ]
