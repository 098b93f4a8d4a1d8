"""The import graph keeps the stage layout of docs (design: "stages only import downwards").

Read from the source with ``ast``, so the test sees every import a module can run, at its top
or inside a function, but not those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "asrfair"

# Lower ranks are imported by higher ones, never the other way round.
RANKS: dict[str, int] = {
    **dict.fromkeys(
        ["asrfair", "errors", "console", "files", "text", "hparams", "registry", "groups"], 0
    ),
    "stats": 0,
    **dict.fromkeys(["report", "report_model"], 1),  # the Report: data every stage may produce
    **dict.fromkeys(["transcripts", "corpus", "audio", "store", "split", "subsets", "metadata"], 2),
    **dict.fromkeys(["kaldi", "sclite", "inputs", "hfdata"], 2),  # input formats
    **dict.fromkeys(["scoring", "metrics"], 3),
    **dict.fromkeys(["runs", "plots", "html_report"], 4),  # the run folder on disk: no torch
    **dict.fromkeys(["models", "train", "infer", "trainer_metrics", "ranks"], 5),
    **dict.fromkeys(["hookspecs", "plugins", "plugin", "default_plugins"], 6),
    **dict.fromkeys(["audit_options", "pipeline", "comparison", "study", "api", "hf"], 7),
    **dict.fromkeys(["cli", "testing", "__main__"], 8),
    "evaluate_metric": 8,  # the script evaluate.load() imports: it calls asrfair.hf
}
# Modules that read a finished run or score transcripts: they must load without torch.
TORCH_FREE = [
    *("api", "comparison", "runs", "report", "plots", "html_report", "scoring", "metrics"),
    "plugins",
    *("inputs", "kaldi", "sclite", "hfdata"),
]
MODEL_STAGES = {"models", "train", "infer", "pipeline"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "asrfair" if parts == ("__init__",) else ".".join(parts)


def _stage(module: str) -> str:
    """``default_plugins.metrics`` is ranked as the plugin layer; others by their own name."""
    return module.split(".")[0]


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, *, top_level_only: bool) -> list[str]:
    """Every ``asrfair.X`` (as ``X``) and third-party top package a module imports."""
    found: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if nested and top_level_only:
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "asrfair":  # `from asrfair import files` names a module
                    found.extend(
                        f"asrfair.{a.name}" if (PACKAGE / f"{a.name}.py").exists() else "asrfair"
                        for a in child.names
                    )
                else:
                    found.append(child.module)
            visit(child, nested)

    visit(tree, False)
    return [
        name.removeprefix("asrfair.") if name.startswith("asrfair.") else name for name in found
    ]


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[_module_name(path)] = set(_imports(tree, top_level_only=top_level_only))
    return graph


def _ours(graph: dict[str, set[str]], module: str) -> set[str]:
    return {m for m in graph[module] if m in graph}


def test_every_module_has_a_rank() -> None:
    unranked = sorted(m for m in _graph(top_level_only=False) if _stage(m) not in RANKS)
    assert not unranked, f"give these modules a rank in RANKS: {unranked}"


def test_stages_import_only_downwards() -> None:
    graph = _graph(top_level_only=False)
    upward = sorted(
        f"{module} ({RANKS[_stage(module)]}) imports {target} ({RANKS[_stage(target)]})"
        for module in graph
        if module != "asrfair"  # the package root loads the Python API lazily, on first use
        for target in _ours(graph, module)
        if RANKS[_stage(target)] > RANKS[_stage(module)]
    )
    assert not upward, upward


def test_no_import_cycle() -> None:
    graph = {m: _ours(_graph(top_level_only=False), m) for m in _graph(top_level_only=False)}
    graph["asrfair"] = set()  # its lazy re-export of the API is not an import of a stage
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])


@pytest.mark.parametrize("module", TORCH_FREE)
def test_reading_runs_and_scoring_never_loads_the_model_stages(module: str) -> None:
    """What ``score``, ``compare`` and ``report`` load on import: no torch, no training code."""
    graph = _graph(top_level_only=True)
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_ours(graph, current))
    third_party = {t.split(".")[0] for m in seen for t in graph[m] if t not in graph}
    assert not seen & MODEL_STAGES, sorted(seen & MODEL_STAGES)
    assert not third_party & {"torch", "transformers", "accelerate"}, sorted(third_party)
