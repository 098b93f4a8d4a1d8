"""Everything a plugin author needs, from one import.

    from asrfair.plugin import AsrfairError, MetricContext, Register, hookimpl

A third-party plugin imports from here only; the modules behind these names may move, this
surface does not. The kinds a plugin can register, each with its callable's type:

- a dataset ``DatasetLoader``: ``(arg) -> Corpus | DataFrame``, for ``--dataset name:arg``;
- a normaliser ``Normalizer``: ``(text) -> text``, applied to references and hypotheses alike;
- a training subset ``SubsetFactory``: ``(arg) -> Selector``, and a ``Selector`` maps
  ``(table, seed)`` to a boolean mask over the training rows;
- a metric ``Metric``: ``(ctx: MetricContext) -> None``, recording its values through ``ctx``
  (``ctx.record_rate`` for a rate with speaker intervals, overall and per group);
- an exporter ``Exporter``: ``(report: Report) -> str | rich renderable``.

Raise ``AsrfairError`` for bad input: the CLI prints it as one line that names the plugin's
problem; any other exception from a plugin is reported as that plugin's failure.
"""

from __future__ import annotations

from asrfair import hookimpl
from asrfair.corpus import Corpus, DatasetLoader
from asrfair.errors import AsrfairError
from asrfair.metrics import Metric, MetricContext
from asrfair.plugins import Plugins
from asrfair.registry import Register
from asrfair.report import Exporter, Report, layout, report_tables
from asrfair.subsets import Selector, SubsetFactory
from asrfair.text import Normalizer

__all__ = [
    "AsrfairError",
    "Corpus",
    "DatasetLoader",
    "Exporter",
    "Metric",
    "MetricContext",
    "Normalizer",
    "Plugins",
    "Register",
    "Report",
    "Selector",
    "SubsetFactory",
    "hookimpl",
    "layout",
    "report_tables",
]
