"""--figure: the per-label figure (paper Fig. 3) for 13 models, formats, and the optional matplotlib."""

from __future__ import annotations

import argparse
import importlib.util
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from medvision_metrics.figure import MODEL_COLOURS, check_figure_path, write_per_label_figure
from medvision_metrics.leaderboard import build_leaderboard
from medvision_metrics.leaderboard_cli import add_arguments, run
from medvision_metrics.report import model_display_name
from mv_records import PAPER_MODELS, make_records, paper_model_records, write_samples

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed (pip install matplotlib)"
)


@pytest.fixture(scope="module")
def thirteen() -> dict[str, Any]:
    return build_leaderboard(paper_model_records(), ci=0.95, ci_iterations=50)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@needs_matplotlib
def test_thirteen_models_png(thirteen: dict[str, Any], tmp_path: Path) -> None:
    assert len(thirteen["models"]) == len(PAPER_MODELS) == 13
    assert len(set(MODEL_COLOURS[:13])) == 13
    path = write_per_label_figure(thirteen, tmp_path / "fig.png")
    width, height = png_size(path)
    # 26 regions x 13 bars: wide enough for ~0.07 in per bar at 110 dpi, and not absurd
    assert 2500 < width < 4500 and 1200 < height < 2500


@needs_matplotlib
def test_thirteen_models_svg_names_every_model_and_panel(thirteen: dict[str, Any], tmp_path: Path) -> None:
    svg = write_per_label_figure(thirteen, tmp_path / "fig.svg").read_text(encoding="utf-8")
    for model in thirteen["models"]:
        assert model_display_name(model["model"]) in svg
    for text in ("(a) Detection recall, precision and F1", "(b) T/L MRE per label", "(c) A/D MRE per sub-task label"):
        assert text in svg
    assert "Kidney Tumor/Lesion @ CT (A)" in svg and "error bars: 95% bootstrap intervals" in svg


@needs_matplotlib
def test_one_family_only_and_small_regions(tmp_path: Path) -> None:
    result = build_leaderboard(make_records(10, region_label="kidney"))  # under the 50-sample floor
    svg = write_per_label_figure(result, tmp_path / "fig.svg").read_text(encoding="utf-8")
    assert "all regions (none meets the Table 2 rules)" in svg and "no T/L records" in svg
    assert "Kidney @ CT (A)" in svg


def test_figure_path_extension() -> None:
    assert check_figure_path("a/b.SVG").name == "b.SVG"
    with pytest.raises(ValueError, match=r"unsupported figure format '.jpg'; use one of .png, .svg, .pdf"):
        check_figure_path("fig.jpg")


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


@needs_matplotlib
def test_cli_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_samples(tmp_path / "run" / "x_samples_medvision_det.jsonl", make_records(50, region_label="kidney"))
    assert cli(str(tmp_path / "run"), "--figure", str(tmp_path / "f.png")) == 0
    assert png_size(tmp_path / "f.png")[0] > 0
    assert cli(str(tmp_path / "run"), "--figure", str(tmp_path / "f.gif")) == 2
    assert "unsupported figure format" in capsys.readouterr().err


def test_missing_matplotlib_is_a_clear_error_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_samples(tmp_path / "run" / "x_samples_medvision_det.jsonl", make_records(50, region_label="kidney"))
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    out = tmp_path / "out"
    assert cli(str(tmp_path / "run"), "--figure", str(tmp_path / "f.png"), "--out", str(out)) == 2
    captured = capsys.readouterr()
    assert "the figure needs matplotlib" in captured.err and "pip install matplotlib" in captured.err
    assert captured.out == "" and not out.exists() and not (tmp_path / "f.png").exists()
    assert cli(str(tmp_path / "run"), "--boxsize", "--out", str(out)) == 2  # the box-size plot needs it too
    assert cli(str(tmp_path / "run"), "--boxsize") == 0  # without --out nothing is plotted
