"""Test a plugin without installing it: build a plugin set around it and run the real CLI.

    from asrfair.testing import run_cli, with_plugins

    def test_my_metric(tmp_path):
        result = run_cli(["score", "t.csv", "--metrics", "wer,mine"], with_plugins(my_plugin))
        assert result.exit_code == 0, result.output

Nothing here touches the installed plugins or asrfair's own app: each call gets its own
manager and a copy of the app, so tests can run in any order and in parallel.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import typer
from typer.testing import CliRunner, Result

from asrfair.plugins import Plugins


def with_plugins(*plugins: object) -> Plugins:
    """asrfair's built-ins plus the given plugin modules or objects, and no entry points."""
    return Plugins.with_builtins(*plugins)


def app_with(plugins: Plugins) -> typer.Typer:
    """A copy of the ``asrfair`` app carrying the commands these plugins register."""
    from asrfair import cli

    app = copy.copy(cli.app)
    app.registered_commands = list(cli.app.registered_commands)
    plugins.add_commands(app)
    return app


def run_cli(args: Sequence[str], plugins: Plugins | None = None) -> Result:
    """``asrfair ARGS`` with these plugins (default: the built-ins only), captured.

    The result has ``exit_code``, ``stdout``, ``stderr`` and ``output``, as typer's runner.
    """
    chosen = plugins or with_plugins()
    return CliRunner().invoke(app_with(chosen), list(args), obj=chosen)
