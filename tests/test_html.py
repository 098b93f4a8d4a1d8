"""The HTML report (``--format html``, ``report.html``): one self-contained page whose numbers
are the JSON's, whose user strings are text, checked as a file and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import asrfair
from asrfair.cli import app
from asrfair.html_report import to_html
from asrfair.plugins import installed
from asrfair.report import report_tables, table_cells
from asrfair.report_model import RateCell
from conftest import gender_rows, requires_tool, write_transcripts

runner = CliRunner()
STUDY = Path(__file__).resolve().parents[1] / "examples" / "notebook_study"
SCRIPT = "<script>alert(1)</script>"
# A column name and a file name that would be markup if pasted into a page unescaped.
COLUMN = "<img src=x onerror=alert(2)>"
FILE_NAME = "t<b onmouseover=alert(3)>.csv"


class _Page(HTMLParser):
    """The tables (caption and cell texts), tags and attributes of a page, as a browser
    would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append(("", []))
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1] = ("".join(self._caption).strip(), self.tables[-1][1])
            self._caption = None

    def handle_data(self, data: str) -> None:
        for part in (self._cell, self._caption):
            if part is not None:
                part.append(data)


def parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


def hostile_rows() -> list[dict[str, object]]:
    """gender_rows with markup in a group label and in a column name."""
    rows = gender_rows()
    for row in rows:
        row[COLUMN] = row.pop("age")
        if row["gender"] == "female_feminine":
            row["gender"] = SCRIPT
    return rows


@pytest.fixture
def hostile_csv(tmp_path: Path) -> Path:
    return write_transcripts(tmp_path / FILE_NAME, hostile_rows())


def score_page(path: Path, out: Path, *options: str) -> tuple[str, dict[str, Any]]:
    """The HTML page and the JSON report of one ``asrfair score``."""
    args = ["score", str(path), "--groups", f"gender,{COLUMN}", "--bootstrap", "200"]
    args += ["--permutations", "200", *options]
    result = runner.invoke(app, [*args, "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    return out.read_text(encoding="utf-8"), data


def key_numbers(data: dict[str, Any]) -> list[str]:
    """What a reader must find on the page, formatted from the JSON itself: each rate with its
    interval, overall and per group, and each gap's difference with its interval."""
    texts = [RateCell.from_json(data["overall"]["wer"], data["overall"]["wer_ci"]).percent()]
    for entries in data["groups"].values():
        texts += [RateCell.from_json(e["wer"], e["wer_ci"]).percent() for e in entries]
    for gaps in data["gaps"].values():
        texts += [RateCell.from_json(g["diff"], g["diff_ci"]).percent() for g in gaps]
    return texts


def test_html_is_an_exporter_like_the_others() -> None:
    exporter = installed().exporters().get("html")
    result = asrfair.score(pd.DataFrame(gender_rows()), groups="gender", bootstrap=0)
    assert exporter is to_html
    assert result.export("html").startswith("<!DOCTYPE html>")


def test_the_page_tables_are_the_report_tables_cell_for_cell(tmp_path: Path) -> None:
    """Every exporter lays a report out with report_tables; the page shows the same cells, in
    the same order, under the same titles, as the Markdown does."""
    path = write_transcripts(tmp_path / "t.csv", gender_rows())
    page, _ = score_page(path, tmp_path / "r.html", "--groups", "gender,age")
    report = asrfair.score(
        pd.read_csv(path), groups="gender,age", speaker="speaker", bootstrap=200, permutations=200
    ).report
    expected = []
    for view in report_tables(report):
        header, rows = table_cells(view)
        expected.append((view.title, [header, *[[text for text, _ in row] for row in rows]]))
    shown = [table for table in parse(page).tables if table[0] in dict(expected)]
    assert shown == expected


def test_the_page_leads_with_the_largest_gap_and_the_small_groups(tmp_path: Path) -> None:
    path = write_transcripts(tmp_path / "t.csv", gender_rows())
    page, data = score_page(path, tmp_path / "r.html", "--groups", "gender")
    summary = page[page.index('id="summary"') : page.index("</section>")]
    (gap,) = [g for g in data["gaps"]["gender"] if g["metric"] == "wer"]
    value, interval = RateCell.from_json(gap["diff"], gap["diff_ci"]).percent().split(" ", 1)
    assert f"by gender, {gap['a']} − {gap['b']} = {value} points {interval}" in summary
    assert f"p = {gap['p_value']:.3f}" in summary
    # 6 speakers a group, fewer than --min-speakers 10: both are flagged, with their counts.
    assert "Groups with fewer than 10 speakers" in summary
    assert "gender=female_feminine (6 speakers); gender=male_masculine (6 speakers)" in summary
    assert page.index('id="summary"') < page.index("<svg") < page.index('id="tables"')
    assert page.index('id="tables"') < page.index('id="method"') < page.index('id="warnings"')
    assert page.index('id="warnings"') < page.index('id="configuration"')
    assert "intervals from 200 draws resampling speakers" in page  # the method sentence


def test_the_page_loads_nothing_and_runs_only_its_own_script(
    hostile_csv: Path, tmp_path: Path
) -> None:
    page, _ = score_page(hostile_csv, tmp_path / "r.html")
    parsed = parse(page)
    assert not [t for t, attrs in parsed.tags if "src" in attrs or "href" in attrs]
    assert not [t for t in parsed.tags if t[0] in ("link", "iframe", "img", "object", "embed")]
    assert not [t for t, attrs in parsed.tags if any(a.startswith("on") for a in attrs)]
    assert [t for t, _ in parsed.tags].count("script") == 1  # the sorter, inline
    assert not re.search(r"url\((?!#)", page) and "@import" not in page  # url(#id): in-page


def test_user_strings_are_escaped_everywhere(hostile_csv: Path, tmp_path: Path) -> None:
    """A group label, a column name and a file name are text on the page: in the tables, the
    summary, the title, the configuration, and the figure (which matplotlib escapes)."""
    page, _ = score_page(hostile_csv, tmp_path / "r.html")
    assert SCRIPT not in page and COLUMN not in page and "<b onmouseover" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<title>ASR fairness audit: " in page and "t&lt;b onmouseover=alert(3)&gt;.csv" in page
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</text>" in svg


def test_a_bidi_control_in_a_label_is_shown_and_reorders_nothing(tmp_path: Path) -> None:
    """U+202E in a label would show the numbers after it reversed ("stniop 7.11"): the page
    shows each control as text instead, in the tables and the figure alike."""
    rows = gender_rows()
    for row in rows:
        if row["gender"] == "female_feminine":
            row["gender"] = "fem\u202eRTL\u2066x"
    path, out = write_transcripts(tmp_path / "t.csv", rows), tmp_path / "r.html"
    args = ["score", str(path), "--groups", "gender", "--bootstrap", "200", "--permutations", "0"]
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
    page, data = (
        out.read_text(encoding="utf-8"),
        json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout),
    )
    assert not re.search("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", page)
    assert not re.search(r"&#(x202e|8238);", page, re.I)
    assert "fem[U+202E]RTL[U+2066]x" in page
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert "fem[U+202E]RTL[U+2066]x" in svg
    assert any(g["group"] == "fem\u202eRTL\u2066x" for g in data["groups"]["gender"])


def test_out_html_alone_gives_the_page_and_several_comparisons_need_out(tmp_path: Path) -> None:
    path = write_transcripts(tmp_path / "t.csv", gender_rows())
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["score", str(path), "--bootstrap", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    rich = tmp_path / "page.txt"  # any other suffix keeps the terminal tables
    runner.invoke(app, ["score", str(path), "--bootstrap", "0", "--out", str(rich)])
    assert "<!DOCTYPE" not in rich.read_text(encoding="utf-8")


def test_a_compare_page(tmp_path: Path) -> None:
    rows = gender_rows()
    a = write_transcripts(tmp_path / "a.csv", rows)
    better = [{**r, "hyp": r["ref"]} if i % 3 else r for i, r in enumerate(rows)]
    b = write_transcripts(tmp_path / "b.csv", better)
    args = ["compare", str(a), str(b), "--groups", "gender", "--bootstrap", "200"]
    page = runner.invoke(app, [*args, "--format", "html"]).stdout
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    wer = data["overall"]["wer"]
    value, interval = RateCell.from_json(wer["diff"], wer["diff_ci"]).percent().split(" ", 1)
    assert f"WER, B − A</dt>\n<dd>{value} points {interval}, P(B better) = " in page
    assert "Largest per-group WER change, B − A" in page
    assert "<svg" not in page  # compare draws no figure, for the page as for --plot


def test_a_dataset_page(tmp_path: Path) -> None:
    """``data inspect --format html``: the sizes, with no summary of rates and no figure."""
    result = runner.invoke(app, ["data", "inspect", "demo", "--groups", "gender", "-f", "html"])
    assert result.exit_code == 0, result.output
    titles = [title for title, _ in parse(result.stdout).tables]
    assert titles[:2] == ["Splits", "By gender"]
    assert 'id="summary"' not in result.stdout and "<svg" not in result.stdout


def test_the_study_page_from_the_committed_study() -> None:
    """``asrfair report examples/notebook_study --format html``: the runs, the paired
    comparisons and the gap forest, from the stored study.json; the committed page is it (the
    figure aside, whose coordinates depend on the matplotlib version)."""
    result = runner.invoke(app, ["report", str(STUDY), "--format", "html"])
    assert result.exit_code == 0, result.output
    page = result.stdout
    titles = [title for title, _ in parse(page).tables]
    assert {"Runs by gender", "Paired comparisons (same test set)"} <= set(titles)
    assert (
        "Largest WER gap of any run" in page
        and "male--lr-3e-4: by gender, female − male = 29.5 points" in page
    )
    assert page.count("<svg") == 1 and "Gap by gender, per run" in page

    def no_figure(text: str) -> str:
        return re.sub(r"<svg.*?</svg>", "<svg/>", text, flags=re.S)

    assert no_figure(page) == no_figure((STUDY / "report.html").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# In a real browser: headless Chromium, driven by playwright (its driver ships in the wheel; the
# browser is the system's, never one that `playwright install` downloads).

CHROMIUM_ARGS = [
    "--no-sandbox",  # root (CI, containers) cannot use Chromium's sandbox
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The printable width of A4 (210 mm) and Letter (8.5 in) less the page's 12 mm side margins,
# in CSS pixels (96 per inch).
PRINT_WIDTHS = {"A4": round((210 - 24) / 25.4 * 96), "Letter": round((8.5 - 24 / 25.4) * 96)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


class Visit:
    """One page opened from its file, with everything the browser reported about it."""

    def __init__(self, browser: Any, path: Path, **context: Any) -> None:
        self.page = browser.new_page(**context)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        self.text: str = self.page.inner_text("body")

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:  # alert(1) running would open one
        self.dialogs.append(dialog.message)
        dialog.dismiss()


chromium = requires_tool("chromium", "apt-get install chromium")


@chromium
def test_in_chromium_the_page_shows_its_numbers_and_runs_no_label(
    browser: Any, hostile_csv: Path, tmp_path: Path
) -> None:
    path = tmp_path / "r.html"
    _, data = score_page(hostile_csv, path)
    visit = Visit(browser, path)
    assert visit.errors == []
    assert visit.requests == [path.resolve().as_uri()]  # the file itself, nothing else
    assert visit.dialogs == []  # no label ran
    assert visit.page.evaluate("document.scripts.length") == 1
    assert SCRIPT in visit.text and COLUMN in visit.text  # shown as text
    missing = [number for number in key_numbers(data) if number not in visit.text]
    assert not missing, missing
    labels = visit.page.locator("svg text").all_text_contents()
    assert SCRIPT in labels  # the figure's tick label, as text


@chromium
def test_in_chromium_tables_sort_and_the_page_reads_without_script(
    browser: Any, tmp_path: Path
) -> None:
    path = tmp_path / "r.html"
    score_page(write_transcripts(tmp_path / "t.csv", gender_rows()), path, "--groups", "gender")
    visit = Visit(browser, path)
    caption = visit.page.locator("caption", has_text=re.compile("^By gender$"))
    table = visit.page.locator("table", has=caption)
    first = table.locator("tbody tr td:first-child")
    assert first.all_text_contents() == ["female_feminine", "male_masculine"]
    table.locator("thead th").nth(1).click()  # WER, ascending: the male rows have fewer errors
    assert first.all_text_contents() == ["male_masculine", "female_feminine"]
    assert table.locator("thead th").nth(1).get_attribute("aria-sort") == "ascending"
    plain = Visit(browser, path, java_script_enabled=False)
    assert plain.errors == [] and "By gender" in plain.text and "Largest WER gap" in plain.text
    assert plain.text.count("female_feminine") == visit.text.count("female_feminine")


@chromium
@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_in_chromium_the_study_page_prints_on_a4_and_letter(
    browser: Any, paper: str, tmp_path: Path
) -> None:
    """In print, the widest page (a study's twelve-column table) fits the paper's width, and
    Chromium lays it out as a PDF of that size."""
    visit = Visit(
        browser, STUDY / "report.html", viewport={"width": PRINT_WIDTHS[paper], "height": 900}
    )
    assert visit.errors == [] and visit.requests == [(STUDY / "report.html").resolve().as_uri()]
    visit.page.emulate_media(media="print")
    overflow = visit.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    pdf = tmp_path / f"{paper}.pdf"
    visit.page.pdf(path=str(pdf), format=paper, prefer_css_page_size=True)
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf.read_bytes())
    expected = {"A4": (595.3, 841.9), "Letter": (612.0, 792.0)}[paper]  # points
    assert len(boxes) > 1  # pages, each of the paper's size
    assert all(
        abs(float(w) - expected[0]) < 1 and abs(float(h) - expected[1]) < 1.1 for w, h in boxes
    )
