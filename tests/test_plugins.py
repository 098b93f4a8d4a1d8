"""Plugins registered and unregistered inline, as in simonw/llm's tests/test_plugins.py."""

from __future__ import annotations

import json
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from asrfair import cli, hookimpl, plugins
from asrfair.corpus import load_corpus
from asrfair.errors import AsrfairError
from asrfair.metrics import run_metrics
from asrfair.scoring import score
from asrfair.stats import StatsConfig
from asrfair.subsets import select_subset
from asrfair.testing import run_cli, with_plugins
from asrfair.text import identity

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "speaker": ["s1", "s1", "s2"],
            "ref": ["un deux", "trois", "quatre cinq"],
            "hyp": ["un", "trois", "quatre six"],
        }
    )


def test_hook_register_normalizers() -> None:
    class Upper:
        @hookimpl
        def register_normalizers(self, register):  # type: ignore[no-untyped-def]
            register("upper", str.upper)

    chosen = with_plugins(Upper())
    assert chosen.normalizers().get("upper")("ab") == "AB"
    assert {"cv-french", "basic", "none", "upper"} <= set(chosen.normalizers().names())
    assert "upper" not in plugins.installed().normalizers()  # nothing global was touched


def test_hook_register_subsets() -> None:
    class First:
        @hookimpl
        def register_subsets(self, register):  # type: ignore[no-untyped-def]
            register("first", lambda arg: lambda table, seed: np.arange(len(table)) < int(arg))

    selector = with_plugins(First()).selector("first:2")
    chosen = select_subset(_table(), selector, "first:2")
    assert chosen["id"].tolist() == ["a", "b"]


def test_hook_register_metrics() -> None:
    class HypWords:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            def hyp_words(ctx):  # type: ignore[no-untyped-def]
                ctx.overall["hyp_words"] = int(ctx.table.frame["hyp"].str.split().str.len().sum())

            register("hyp_words", hyp_words)

    chosen = with_plugins(HypWords()).chosen_metrics(["wer", "hyp_words"])
    report = run_metrics(score(_table(), identity), StatsConfig(n_boot=0), chosen)
    assert report.data["overall"]["hyp_words"] == 4
    assert report.data["overall"]["errors"] == 2


def test_hook_register_exporters(tmp_path: Path) -> None:
    class Headline:
        @hookimpl
        def register_exporters(self, register):  # type: ignore[no-untyped-def]
            register("headline", lambda report: f"WER={report.data['overall']['wer']:.2f}\n")

    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    result = run_cli(["score", str(path), "--format", "headline"], with_plugins(Headline()))
    assert result.exit_code == 0, result.output
    assert result.stdout == "WER=0.40\n"


def test_hook_register_datasets(tmp_path: Path) -> None:
    class Toy:
        @hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            def toy(arg):  # type: ignore[no-untyped-def]
                n = int(arg)
                return pd.DataFrame(
                    {
                        "id": [f"u{i}" for i in range(n)],
                        "audio": [str(tmp_path / f"u{i}.wav") for i in range(n)],
                        "sentence": [f"phrase {i}" for i in range(n)],
                        "speaker": [f"s{i % 2}" for i in range(n)],
                        "gender": ["f", "male_masculine", None, "f", "m", "x"][:n],
                    }
                )

            register("toy", toy)

    toy = with_plugins(Toy())
    # The public path every command takes: resolve the name, call the loader, finish_corpus.
    corpus = load_corpus("toy:6", toy.datasets())
    frame = corpus.frame
    assert corpus.name == "toy:6"
    assert frame["id"].tolist() == [f"u{i}" for i in range(6)]
    assert frame["sentence"].tolist() == [f"phrase {i}" for i in range(6)]
    assert frame["speaker"].tolist() == ["s0", "s1"] * 3
    assert frame["gender"].tolist() == ["female", "male", "", "female", "male", "other"]
    assert frame["split"].tolist() == [""] * 6  # added by finish_corpus
    # and through the CLI: the toy's speakers and utterances are what data inspect counts
    result = run_cli(["data", "inspect", "toy:6", "--groups", "gender", "--format", "json"], toy)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"] == "toy:6"
    assert sum(row["n_utterances"] for row in data["splits"]) == 5  # the row without gender drops
    assert {row["group"] for row in data["groups"]["gender"]} == {"female", "male", "other"}


def test_hook_register_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Hello:
        @hookimpl
        def register_commands(self, app):  # type: ignore[no-untyped-def]
            @app.command()
            def hello(name: str = "world") -> None:
                typer.echo(f"hello {name}")

    hello = with_plugins(Hello())
    assert run_cli(["hello", "--name", "you"], hello).stdout == "hello you\n"
    assert "hello" in run_cli(["--help"], hello).stdout
    assert "hello" not in runner.invoke(cli.app, ["--help"]).stdout  # asrfair's own app untouched
    # The `asrfair` script adds the installed plugins' commands to its app before parsing.
    monkeypatch.setattr(plugins, "installed", lambda: hello)
    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    monkeypatch.setattr(cli, "_commands_added", False, raising=False)
    monkeypatch.setattr(sys, "argv", ["asrfair", "hello", "--name", "you"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()  # what the `asrfair` script and `python -m asrfair` run
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err
    assert captured.out == "hello you\n"


def test_duplicate_names_are_refused_naming_both_plugins() -> None:
    class Clash:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register("wer", lambda ctx: None)

    with pytest.raises(AsrfairError, match=r"'wer' is registered by both .*metrics.* and 'Clash'"):
        with_plugins(Clash()).metrics()


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(AsrfairError) as err:
        with_plugins().normalizers().get("klingon", option="--normalizer")
    assert (
        str(err.value)
        == "--normalizer: unknown normalizer 'klingon'; known: basic, cv-french, lower, none, "
        "whisper-basic, whisper-english"
    )


BROKEN_PLUGINS = {
    "exits_on_import": "raise SystemExit(3)\n",
    "misspelt": (
        "from asrfair import hookimpl\n@hookimpl\ndef register_metric(register):\n    pass\n"
    ),
    "raises_in_hook": (
        "from asrfair import hookimpl\n"
        "@hookimpl\n"
        "def register_metrics(register):\n"
        "    raise RuntimeError('boom')\n"
    ),
    "raises_in_commands": (
        "from asrfair import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(app):\n"
        "    raise RuntimeError('no commands today')\n"
    ),
}


@pytest.fixture
def broken_plugins(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """Four broken third-party plugins installed as entry points, beside the real ones."""
    for name, source in BROKEN_PLUGINS.items():
        (tmp_path / f"asrfair_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = [EntryPoint(name=n, value=f"asrfair_{n}", group="asrfair") for n in BROKEN_PLUGINS]
    real = plugins.entry_points
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*fake, *real(group=group)])
    monkeypatch.setattr(cli, "_commands_added", False)
    return list(BROKEN_PLUGINS)


def test_broken_plugins_are_named_and_skipped(
    broken_plugins: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    errors = plugins.installed().errors
    assert any(e.startswith("plugin 'exits_on_import'") and "SystemExit" in e for e in errors)
    assert any(e.startswith("plugin 'misspelt'") and "register_metric" in e for e in errors)
    assert not plugins.installed().pm.has_plugin("misspelt")
    assert "wer" in plugins.installed().metrics().names()  # the built-ins still register
    assert "failed in register_metrics" in capsys.readouterr().err
    cli.add_plugin_commands()  # the raising register_commands is named, the app survives
    assert "failed in register_commands" in capsys.readouterr().err
    for args in (["--help"], ["--version"], ["plugins"]):
        assert runner.invoke(cli.app, args).exit_code == 0, args


def test_default_plugins_are_the_declared_entry_points() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = project["project"]["entry-points"]["asrfair"]
    assert tuple(declared) == plugins.DEFAULT_PLUGINS
    assert all(name == value for name, value in declared.items())


def test_block_environment_variable(fresh_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.BLOCK_ENV, "asrfair.default_plugins.exporters, agebuckets")
    names = [row["name"] for row in plugins.installed().info()]
    assert "asrfair.default_plugins.exporters" not in names
    assert "agebuckets" not in names
    assert "asrfair.default_plugins.metrics" in names
    with pytest.raises(AsrfairError, match="unknown exporter 'json'; known: \\(none\\)"):
        plugins.installed().exporters().get("json")


def test_plugin_that_fails_to_import_is_named_and_skipped(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = EntryPoint(name="broken", value="asrfair_no_such_module", group="asrfair")
    real = plugins.entry_points

    def with_broken(group: str) -> list[EntryPoint]:
        return [broken, *real(group=group)]

    monkeypatch.setattr(plugins, "entry_points", with_broken)
    loaded = plugins.installed()
    assert len(loaded.errors) == 1
    assert loaded.errors[0].startswith("plugin 'broken' (asrfair_no_such_module) failed to import")
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    result = runner.invoke(cli.app, ["score", str(path), "--format", "json"])
    assert result.exit_code == 0
    assert "plugin 'broken'" in result.stderr
    assert '"wer": 0.4' in result.stdout


def test_the_example_plugin_uses_only_the_public_plugin_surface() -> None:
    import ast

    import asrfair.plugin

    source = Path(__file__).resolve().parents[1] / "plugins" / "asrfair-agebuckets" / "src"
    tree = ast.parse((source / "asrfair_agebuckets" / "__init__.py").read_text())
    modules = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert {m for m in modules if m.startswith("asrfair")} == {"asrfair.plugin"}
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert names & set(asrfair.plugin.__all__) == names - {"annotations"}


class Longest:
    """A metric with an option (``n``) and a table of its own, as docs/plugins.md shows."""

    @hookimpl
    def register_metrics(self, register):  # type: ignore[no-untyped-def]
        def longest(ctx):  # type: ignore[no-untyped-def]
            n = int(ctx.option("n", "1"))
            bad = ctx.option("bad") is not None
            frame = ctx.table.frame.assign(errors=ctx.table.word_errors)
            top = frame.nlargest(n, "w_n")
            rows = [[i, int(w), {"value": float(e), "ci": [0.0, float(e) + 1]}] for i, w, e in
                    zip(top["id"], top["w_n"], top["errors"], strict=True)]
            if bad:
                rows[0][1] = float("nan")
            ctx.add_table("Longest utterances", ["id", "words", "errors"], rows, ["a note"])

        register("longest", longest)


def test_metric_options_reach_the_metric_and_its_table_every_exporter(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    args = ["score", str(path), "--bootstrap", "0", "--metrics", "wer,longest:n=2"]
    data = json.loads(run_cli([*args, "-f", "json"], with_plugins(Longest())).stdout)
    assert data["method"]["metrics"] == ["wer", "longest:n=2"]
    (table,) = data["tables"]
    assert table == {
        "title": "Longest utterances",
        "metric": "longest",
        "columns": ["id", "words", "errors"],
        "rows": [
            ["a", 2, {"value": 1.0, "ci": [0.0, 2.0]}],
            ["c", 2, {"value": 1.0, "ci": [0.0, 2.0]}],
        ],
        "notes": ["a note"],
    }
    for fmt, shown in (("md", "| a | 2 | 1.000 [0.000, 2.000] |"), ("rich", "Longest utterances"),
                       ("latex", "a & 2 & 1.000 [0.000, 2.000]"),
                       ("csv", "table:Longest utterances,a,errors,1.0,0.0,2.0")):
        result = run_cli([*args, "-f", fmt], with_plugins(Longest()))
        assert result.exit_code == 0, result.output
        assert shown in result.stdout, fmt
    plain = json.loads(run_cli(["score", str(path), "-f", "json"]).stdout)
    assert "tables" not in plain  # reports without tables keep the JSON they had


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ("longest:m=2", "longest:m=2: metric 'longest' has no option 'm'; its options: bad, n"),
        ("longest:2", "--metrics longest:2: '2' is not an option; write longest:KEY=VALUE"),
        ("longest:n=1:n=2", "option 'n' is given twice; keep one"),
        ("longest,longest:n=2", "metric 'longest' is named twice (longest, longest:n=2)"),
        ("longest:bad=1", "metric 'longest' wrote table 'Longest utterances' cells"),
        ("wer:n=1", "metric 'wer' has no option 'n'; its options: none"),
    ],
)
def test_metric_option_mistakes_are_one_line_errors(
    tmp_path: Path, metrics: str, message: str
) -> None:
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    result = run_cli(["score", str(path), "--metrics", metrics], with_plugins(Longest()))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_score_keeps_the_inputs_other_columns_for_metrics(tmp_path: Path) -> None:
    seen = {}

    class Reader:
        @hookimpl
        def register_metrics(self, register):  # type: ignore[no-untyped-def]
            register("reader", lambda ctx: seen.update(columns=list(ctx.table.frame.columns)))

    path = tmp_path / "t.csv"
    _table().assign(duration=[1.5, 2.0, 3.0], text=["x", "y", "z"]).rename(
        columns={"ref": "text_ref"}
    ).to_csv(path, index=False)
    result = run_cli(
        ["score", str(path), "--ref-col", "text_ref", "--metrics", "reader"], with_plugins(Reader())
    )
    assert result.exit_code == 0, result.output
    assert {"duration", "text"} <= set(seen["columns"])
    assert "text_ref" not in seen["columns"]  # it is "ref" now


def test_a_metric_said_twice_alike_runs_once() -> None:
    chosen = with_plugins(Longest()).chosen_metrics(["wer", "longest:n=2", "wer", "longest:n=2"])
    assert list(chosen) == ["wer", "longest:n=2"]
