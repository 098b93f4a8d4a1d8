"""Every hook asrfair calls. A plugin implements any subset of them.

Registration hooks receive a ``register`` callable: the core owns the name
table, so duplicate names and unknown names are caught in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from asrfair.corpus import DatasetLoader
    from asrfair.metrics import Metric
    from asrfair.registry import Register
    from asrfair.report import Exporter
    from asrfair.subsets import SubsetFactory
    from asrfair.text import Normalizer

hookspec = pluggy.HookspecMarker("asrfair")


@hookspec
def register_datasets(register: Register[DatasetLoader]) -> None:
    """Register corpus loaders.

    :param register: call ``register(name, loader)``; ``loader(arg)`` receives the text after
        ``name:`` in ``--dataset name:arg`` and returns a Corpus table.
    """


@hookspec
def register_normalizers(register: Register[Normalizer]) -> None:
    """Register text normalisers, applied alike to references and hypotheses.

    :param register: call ``register(name, normalizer)``; ``normalizer(text) -> text``.
    """


@hookspec
def register_subsets(register: Register[SubsetFactory]) -> None:
    """Register training-subset selectors.

    :param register: call ``register(name, factory)``; ``factory(arg)`` receives the text after
        ``name:`` (or ``None``) and returns ``select(table, seed) -> boolean mask``.
    """


@hookspec
def register_metrics(register: Register[Metric]) -> None:
    """Register metrics computed from a ScoreTable.

    :param register: call ``register(name, metric)``; ``metric(ctx)`` receives a
        ``MetricContext`` and adds fields to the report through it.
    """


@hookspec
def register_exporters(register: Register[Exporter]) -> None:
    """Register report writers.

    :param register: call ``register(name, exporter)``; ``exporter(report)`` returns text (or a
        rich renderable, shown on the terminal).
    """


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``asrfair`` CLI.

    :param app: the root typer application; decorate new commands with ``@app.command()``.
    """
