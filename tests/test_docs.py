"""Every hook must be documented in docs/plugins.md and have a test of its own.

In the manner of datasette's tests/test_docs.py: adding a hook without docs or a test fails here.
"""

import ast
import inspect
import re
from pathlib import Path

import pytest

from asrfair import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "asrfair_spec")
)


def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_there_are_six_hooks() -> None:
    assert HOOKS == [
        "register_commands",
        "register_datasets",
        "register_exporters",
        "register_metrics",
        "register_normalizers",
        "register_subsets",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = re.search(rf"^## {hook}\n(.*?)(?=^## |\Z)", docs, re.M | re.S)
    assert section, f"docs/plugins.md has no '## {hook}' section"
    assert "```python" in section.group(1), f"the {hook} section has no worked example"
    assert "@hookimpl" in section.group(1)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_its_own_test(hook: str) -> None:
    assert f"test_hook_{hook}" in _test_names(), f"write a test named test_hook_{hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()
