"""The docs and the code agree: what README.md and docs/ show is what asrfair does.

In the manner of datasette's tests/test_docs.py, and further: every hook is documented in
docs/plugins.md with a worked example, and that example, installed as a plugin, does what the
section says when its own command line is run; every ``asrfair ...`` command line shown in
README.md and docs/ names real commands and options and parses; every hook has a test of its own
that implements it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import shlex
import shutil
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import asrfair
from asrfair import hookimpl, hookspecs
from asrfair.corpus import load_corpus
from asrfair.plugins import Plugins
from asrfair.subsets import select_subset
from asrfair.testing import app_with, run_cli, with_plugins
from conftest import gender_rows

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLUGINS_MD = ROOT / "docs" / "plugins.md"
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "asrfair_spec")
)
runner = CliRunner()


@functools.cache
def _test_functions() -> dict[str, ast.FunctionDef]:
    found = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = node
    return found


def _section(hook: str) -> str:
    docs = PLUGINS_MD.read_text(encoding="utf-8")
    section = re.search(rf"^## {hook}\n(.*?)(?=^## |\Z)", docs, re.M | re.S)
    assert section, f"docs/plugins.md has no '## {hook}' section"
    return section.group(1)


def _example(hook: str) -> str:
    """The worked example of a hook: the section's ```python block."""
    block = re.search(r"^```python\n(.*?)^```", _section(hook), re.M | re.S)
    assert block, f"the {hook} section has no worked example"
    return block.group(1)


def _argv(line: str) -> list[str] | None:
    """The arguments after ``asrfair`` in a shell line, or None if it does not run asrfair."""
    if not re.match(r"(\S*/)?asrfair\s|(torchrun|accelerate)\s.*-m asrfair\s", line):
        return None
    words = shlex.split(line.split(" > ")[0], comments=True)
    if words and (words[0] == "asrfair" or words[0].endswith("/asrfair")):
        return words[1:]
    if words and words[0] in ("torchrun", "accelerate") and "-m" in words:
        start = words.index("-m")
        if words[start + 1 : start + 2] == ["asrfair"]:
            return words[start + 2 :]
    return None


def command_lines(text: str, source: str) -> list[tuple[str, list[str]]]:
    """Each ``asrfair ...`` line of some Markdown's shell examples: indented or non-Python
    fenced blocks, and paragraphs that are a single `code span`; ``\\`` continuations joined."""
    found: list[tuple[str, list[str]]] = []
    fence: str | None = None
    pending = ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            fence = None if fence is not None else raw[3:].strip()
            continue
        if fence is not None and fence not in ("", "sh", "bash", "console", "shell"):
            continue
        span = re.fullmatch(r"`([^`]+)`", raw.strip())
        if fence is not None or raw.startswith("    "):
            line = raw.strip()
        elif span:
            line = span.group(1)
        else:
            continue
        line = pending + line
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        argv = _argv(line)
        if argv is not None:
            found.append((f"{source}: {line}", argv))
    return found


def documented_command_lines(path: Path) -> list[tuple[str, list[str]]]:
    return command_lines(path.read_text(encoding="utf-8"), path.name)


@pytest.fixture
def docs_plugins() -> Plugins:
    """Every worked example of docs/plugins.md as a plugin, beside the built-ins: the
    test's own plugin set, handed to the real app (nothing global is registered)."""
    modules = []
    for hook in HOOKS:
        module = types.ModuleType(f"docs_{hook}")
        exec(compile(_example(hook), f"docs/plugins.md ({hook})", "exec"), module.__dict__)
        modules.append(module)
    return with_plugins(*modules)


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
    section = _section(hook)
    assert "```python" in section, f"the {hook} section has no worked example"
    assert "@hookimpl" in section
    assert re.search(rf"^def {hook}\(", _example(hook), re.M), f"the example defines no {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_its_own_test(hook: str) -> None:
    """A test named after the hook, which implements that hook (not merely a test by that name)."""
    test = _test_functions().get(f"test_hook_{hook}")
    assert test, f"write a test named test_hook_{hook}"
    implements = [
        node
        for node in ast.walk(test)
        if isinstance(node, ast.FunctionDef)
        and node.name == hook
        and any(ast.unparse(d).endswith("hookimpl") for d in node.decorator_list)
    ]
    assert implements, f"test_hook_{hook} has no @hookimpl def {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


# --- the worked examples do what their sections say --------------------------------------------
def _run(argv: list[str], chosen: Plugins) -> Any:
    result = run_cli(argv, chosen)
    assert result.exit_code == 0, f"asrfair {shlex.join(argv)}\n{result.output}"
    return result


def _check_datasets(argv: list[str] | None, chosen: Plugins) -> None:
    corpus = load_corpus("toy:2", chosen.datasets())
    assert corpus.frame["id"].tolist() == ["u0", "u1"]
    assert corpus.frame["sentence"].tolist() == ["bonjour", "bonjour"]
    assert (
        len(load_corpus("toy", chosen.datasets()).frame) == 3
    )  # `toy` alone: the loader gets None


def _check_normalizers(argv: list[str] | None, chosen: Plugins) -> None:
    assert argv, "the register_normalizers section shows no command line"
    upper = json.loads(_run([*argv, "--format", "json"], chosen).stdout)
    assert upper["config"]["normalizer"] == "upper"
    argv_none = [*argv[: argv.index("--normalizer")], "--normalizer", "none", "--format", "json"]
    none = json.loads(_run(argv_none, chosen).stdout)
    # the references are cased, the hypotheses lower-case: upper-casing both removes errors
    assert upper["overall"]["wer"] < none["overall"]["wer"]


def _check_subsets(argv: list[str] | None, chosen: Plugins) -> None:
    table = pd.DataFrame({"id": list("abcd"), "speaker": list("aabb")})
    chosen_rows = select_subset(table, chosen.selector("first:2"), "first:2")
    assert chosen_rows["id"].tolist() == ["a", "b"]


def _check_metrics(argv: list[str] | None, chosen: Plugins) -> None:
    assert argv, "the register_metrics section shows no command line"
    data = json.loads(_run([*argv, "--format", "json"], chosen).stdout)
    assert 0 < data["overall"]["del"] < 1
    assert len(data["overall"]["del_ci"]) == 2
    assert len(data["groups"]["gender"]) == 2
    assert all("del" in row for row in data["groups"]["gender"])


def _check_exporters(argv: list[str] | None, chosen: Plugins) -> None:
    assert argv, "the register_exporters section shows no command line"
    assert re.fullmatch(r"WER \d\.\d{3} on \d+ utterances\n", _run(argv, chosen).stdout)


def _check_commands(argv: list[str] | None, chosen: Plugins) -> None:
    assert argv == ["hello", "--name", "you"]
    assert _run(argv, chosen).stdout == "hello you\n"


CHECKS = {
    "register_datasets": _check_datasets,
    "register_normalizers": _check_normalizers,
    "register_subsets": _check_subsets,
    "register_metrics": _check_metrics,
    "register_exporters": _check_exporters,
    "register_commands": _check_commands,
}


def test_every_hook_has_a_check() -> None:
    assert sorted(CHECKS) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_worked_example_works(
    hook: str,
    docs_plugins: Plugins,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example, installed as a plugin, runs the section's own command line (on a copy of
    the bundled transcripts named as the docs name them; `audit` lines are only parsed, in
    test_documented_command_lines_parse)."""
    shutil.copy(ROOT / "src" / "asrfair" / "examples" / "transcripts.csv", tmp_path)
    monkeypatch.chdir(tmp_path)
    section_lines = [argv for _, argv in command_lines(_section(hook), hook)]
    runnable = [argv for argv in section_lines if argv[:1] != ["audit"]]
    assert len(runnable) <= 1, section_lines
    CHECKS[hook](runnable[0] if runnable else None, docs_plugins)


# --- every documented command line parses -------------------------------------------------------
def _parse_only(command: Any) -> int:
    """Replace the body of the command and all its subcommands with nothing (parsing and type
    conversion still happen); returns how many commands were replaced."""
    command.callback = lambda **kwargs: None
    return 1 + sum(_parse_only(sub) for sub in getattr(command, "commands", {}).values())


def test_docs_show_command_lines() -> None:
    found = {path.name: documented_command_lines(path) for path in DOCS}
    assert len(found["README.md"]) >= 15
    assert len(found["plugins.md"]) >= 5
    shown = {argv[0] for lines in found.values() for _, argv in lines}
    assert {"audit", "score", "compare", "report", "study", "data", "hello"} <= shown


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        pytest.param(line, argv, id=line)
        for path in DOCS
        for line, argv in documented_command_lines(path)
    ],
)
def test_documented_command_lines_parse(
    line: str,
    argv: list[str],
    docs_plugins: Plugins,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    command = typer.main.get_command(app_with(docs_plugins))
    # every command down to `data inspect` has lost its body: nothing can really run
    assert _parse_only(command) >= 11
    try:
        command.main(args=argv, prog_name="asrfair", standalone_mode=False)
    except Exception as exc:  # typer's own copy of click's UsageError, BadParameter...
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"{line}\n{message}")


# Options of other programs that the docs show beside asrfair's.
FOREIGN_OPTIONS = {
    "--nproc-per-node": "torchrun",
    "--num_processes": "accelerate launch",
    **dict.fromkeys(("--array", "--gres", "--parsable", "--dependency", "--wrap"), "sbatch"),
}


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    for sub in getattr(command, "commands", {}).values():
        names |= _options(sub)
    return names


def test_every_option_the_docs_name_exists(docs_plugins: Plugins) -> None:
    """Prose included: `--pair-by-line`, `--resume` or `--ref-col` in a sentence is a promise."""
    known = _options(typer.main.get_command(app_with(docs_plugins))) | set(FOREIGN_OPTIONS)
    named = {
        (path.name, match.group(0))
        for path in DOCS
        for match in re.finditer(r"(?<![\w-])--[a-z][\w-]*", path.read_text(encoding="utf-8"))
    }
    assert len(named) > 50
    unknown = sorted(f"{page}: {option}" for page, option in named if option not in known)
    assert not unknown, f"options the docs name that no asrfair command has: {unknown}"


# --- the reference sections of docs/plugins.md -----------------------------------------------
def _block(heading: str) -> str:
    """The ```python block under a heading of docs/plugins.md (## or ###)."""
    docs = PLUGINS_MD.read_text(encoding="utf-8")
    section = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", docs, re.M | re.S)
    assert section, f"docs/plugins.md has no '{heading}' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, f"the {heading!r} section has no python example"
    return block.group(1)


def test_the_reference_names_every_public_plugin_type() -> None:
    import asrfair.plugin

    docs = PLUGINS_MD.read_text(encoding="utf-8")
    reference = docs[docs.index("## Reference: the public plugin surface") :]
    missing = [n for n in asrfair.plugin.__all__ if f"`{n}" not in reference]
    assert not missing, f"docs/plugins.md's reference does not describe {missing}"


def test_the_intersection_example_reads_every_grouping(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(_block("Intersectional groupings inside a metric"), namespace)

    class LongShare:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register("long_share", namespace["long_utterance_share"])

    rows = gender_rows()
    result = asrfair.score(
        pd.DataFrame(rows),
        groups="gender,gender*age",
        metrics=["wer", "group_wer", "long_share"],
        bootstrap=0,
        permutations=0,
        plugins=with_plugins(LongShare()),
    )
    by_group = result.by_group.set_index(["grouping", "group"])
    assert set(by_group.index.get_level_values("grouping")) == {"gender", "gender*age"}
    assert by_group["long_share"].notna().all()
    assert (by_group["long_share"] == 0.0).all()  # every demo sentence has 7 words (< 10)


def test_the_testing_example_runs_with_a_docs_plugin(tmp_path: Path) -> None:
    plugin = types.ModuleType("asrfair_myplugin")
    exec(_example("register_metrics"), plugin.__dict__)
    source = _block("Testing your plugin").replace("import asrfair_myplugin", "")
    namespace: dict[str, Any] = {"asrfair_myplugin": plugin}
    exec(source, namespace)
    namespace["test_my_metric"](tmp_path)  # its own assert: exit code 0
    result = run_cli(
        ["score", str(tmp_path / "t.csv"), "--metrics", "wer,deletion_rate", "-f", "json"],
        with_plugins(plugin),
    )
    assert json.loads(result.stdout)["overall"]["del"] == 0.5


# --- the generated API reference ----------------------------------------------------------------
API_MODULES = [
    "asrfair.api",
    "asrfair.plugin",
    "asrfair.testing",
    "asrfair.groups",
    "asrfair.report_model",
    "asrfair.hf",
]


def test_the_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    """pdoc renders the public modules offline; a type it cannot resolve is a warning, and a
    warning fails the build (CONTRIBUTING.md shows the same command for a local copy)."""
    import warnings

    import pdoc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*API_MODULES, output_directory=tmp_path)
    messages = [str(w.message) for w in caught if "pdoc" in w.filename]
    assert not messages, messages
    api = (tmp_path / "asrfair" / "api.html").read_text(encoding="utf-8")
    for name in ("score", "compare", "load_run", "ScoreResult"):
        assert f'id="{name}"' in api, name
    plugin = (tmp_path / "asrfair" / "plugin.html").read_text(encoding="utf-8")
    import asrfair.plugin

    assert all(name in plugin for name in asrfair.plugin.__all__)


# --- docs/python.md runs, block after block, in one session -------------------------------------
def test_the_python_walkthrough_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    page = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert len(blocks) >= 7
    monkeypatch.chdir(ROOT)  # the page's paths are relative to the repository root
    session: dict[str, Any] = {"__name__": "notebook"}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python.md (block {i})", "exec"), session)
