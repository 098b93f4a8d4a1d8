"""`asrfair score --plot FILE` and ScoreResult.plot: per-group rates as points with intervals."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from typer.testing import CliRunner

import asrfair
from asrfair import plots
from asrfair.cli import app
from asrfair.errors import AsrfairError
from conftest import gender_rows, write_transcripts

runner = CliRunner()
FAST = ["--bootstrap", "200", "--permutations", "200"]


@pytest.fixture
def transcripts(tmp_path: Path) -> Path:
    return write_transcripts(tmp_path / "t.csv", gender_rows())


def _score(transcripts: Path, *extra: str) -> object:
    return runner.invoke(app, ["score", str(transcripts), "--groups", "gender", *FAST, *extra])


def test_score_plot_svg_names_every_group_and_both_rates(transcripts: Path, tmp_path: Path) -> None:
    out = tmp_path / "groups.svg"
    result = _score(transcripts, "--plot", str(out), "--format", "json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert result.stdout.lstrip().startswith("{")  # type: ignore[attr-defined]  # report intact
    assert f"wrote {out}" in result.stderr  # type: ignore[attr-defined]
    svg = out.read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "<svg" in svg
    texts = set(re.findall(r"<text[^>]*>([^<]*)</text>", svg))
    assert {"female_feminine", "male_masculine"} <= texts
    assert {"WER by gender", "CER by gender"} <= texts


def test_score_plot_png_and_pdf_by_suffix(transcripts: Path, tmp_path: Path) -> None:
    for name in ("groups.png", "groups.PDF"):
        result = _score(transcripts, "--plot", str(tmp_path / name))
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    png = tmp_path / "groups.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert matplotlib.image.imread(png).shape[0] > 300  # two rows of panels: WER and CER
    pdf = (tmp_path / "groups.PDF").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "{tmp}/g.jpg"], "--plot {tmp}/g.jpg: name a .png, .svg or .pdf file"),
        (["--plot", "{tmp}/g.png", "--groups", ""], "--plot {tmp}/g.png: plots rates per group"),
        (["--plot", "{tmp}/t.csv"], "--plot {tmp}/t.csv: name a .png"),
    ],
)
def test_bad_plot_is_a_one_line_error_before_scoring(
    transcripts: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    result = _score(transcripts, *argv)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert message.format(tmp=tmp_path) in stderr and len(stderr.strip().splitlines()) == 1
    assert not result.stdout  # type: ignore[attr-defined]  # no report: refused first
    assert not list(tmp_path.glob("g.*"))


def test_score_result_plot_from_python(tmp_path: Path) -> None:
    frame = pd.DataFrame(gender_rows())
    result = asrfair.score(frame, groups="gender", speaker="speaker", bootstrap=200)
    assert result.plot(tmp_path / "g.pdf") == tmp_path / "g.pdf"
    assert (tmp_path / "g.pdf").read_bytes().startswith(b"%PDF-")
    no_groups = asrfair.score(frame, bootstrap=0)
    with pytest.raises(AsrfairError, match="nothing to plot per group; pass --groups"):
        no_groups.plot(tmp_path / "x.png")


def test_rates_are_points_with_interval_arms_not_bars() -> None:
    data = asrfair.score(
        pd.DataFrame(gender_rows()), groups="gender", speaker="speaker", bootstrap=200
    ).report.data
    fig = plots._groups_figure(data, ("wer", "cer"))
    try:
        for ax in fig.axes:
            assert not ax.patches  # a bar chart draws one Rectangle patch per group
            points = [line for line in ax.lines if line.get_marker() in ("o", "s")]
            assert sum(len(line.get_xdata()) for line in points) == 2
            assert ax.collections  # the interval arms (errorbar's LineCollection)
    finally:
        plt.close(fig)


def test_the_title_mentions_open_ends_only_when_an_interval_has_one() -> None:
    data = asrfair.score(
        pd.DataFrame(gender_rows()), groups="gender", speaker="speaker", bootstrap=200
    ).report.data
    closed = plots._groups_figure(data, ("wer",))
    data["groups"]["gender"][0]["wer_ci"][1] = None  # an unbounded upper end
    opened = plots._groups_figure(data, ("wer",))
    try:
        assert "open upper ends" not in closed.get_suptitle()
        assert closed.get_suptitle().startswith("95%")
        assert opened.get_suptitle().endswith("; open upper ends drawn to 100%")
    finally:
        plt.close(closed)
        plt.close(opened)


@pytest.mark.parametrize(
    ("min_speakers", "marker", "colour"), [(3, "o", "#0072B2"), (10, "s", "#D55E00")]
)
def test_groups_with_too_few_speakers_are_drawn_apart(
    min_speakers: int, marker: str, colour: str
) -> None:
    """6 speakers a group: flagged under --min-speakers 10 (open vermillion squares, named in
    the legend), not under 3 (blue circles): a shape and a colour, so greyscale keeps it."""
    data = asrfair.score(
        pd.DataFrame(gender_rows()),
        groups="gender",
        speaker="speaker",
        bootstrap=200,
        min_speakers=min_speakers,
    ).report.data
    fig = plots._groups_figure(data, ("wer",))
    try:
        (ax,) = fig.axes
        (points,) = [line for line in ax.lines if line.get_marker() in ("o", "s")]
        assert (points.get_marker(), points.get_color()) == (marker, colour)
        assert len(points.get_xdata()) == 2
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert ("fewer than 10 speakers" in legend) == (marker == "s")
    finally:
        plt.close(fig)


def test_a_label_with_dollars_is_drawn_as_written(tmp_path: Path) -> None:
    """Group labels are data: "$x$" must not be read as TeX maths (nor break the figure)."""
    rows = gender_rows()
    for row in rows:
        row["gender"] = "$\\frac{a}" if row["gender"] == "male_masculine" else "b$c$"
    data = asrfair.score(pd.DataFrame(rows), groups="gender", speaker="speaker", bootstrap=0)
    svg = data.plot(tmp_path / "g.svg").read_text(encoding="utf-8")
    # Drawn text, not the comment matplotlib writes with each label.
    assert ">$\\frac{a}</text>" in svg and ">b$c$</text>" in svg
