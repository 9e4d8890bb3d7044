"""The report page in a real headless Chromium: it loads with every image decoded and no
script error, it sorts, it renders to a non-blank screenshot; broken pages are caught."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from drivingseg.errors import ConfigError
from drivingseg.report.browser import dump_dom, find_browser, page_status, screenshot
from drivingseg.report.html import render_html

REAL_SCREENSHOT = Path("/tmp/report_screenshot.png")


def _sibling(name: str) -> ModuleType:
    """The hand-built report of test_html.py (test folders are not packages)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = _sibling("test_html")


@pytest.fixture(scope="module")
def browser() -> str:
    """The Chromium binary; skip without one, except in CI where it is required."""
    try:
        return find_browser()
    except ConfigError as exc:
        if os.environ.get("DRIVINGSEG_REQUIRE_DATA") == "1":
            pytest.fail(f"{exc}; DRIVINGSEG_REQUIRE_DATA=1 makes a missing browser a failure")
        pytest.skip(f"no headless browser: {exc}")


def _check_screenshot(path: Path, width: int, height: int) -> None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable PNG"
    assert image.shape == (height, width, 3)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 300, f"only {len(colours)} colours: blank page?"
    background = np.all(image == image[-1, -1], axis=2).mean()
    assert background < 0.9, f"{background:.0%} of the screenshot is background"


def _frame_rows(dom: str) -> list[list[str]]:
    """The ``data-v`` (or text) of every cell of the frames table, in DOM order."""
    table = re.search(r'<table class="sortable" id="frames-table">.*?<tbody>(.*?)</tbody>', dom,
                      re.S)
    assert table
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    cell = re.compile(r'<td(?: class="t")?(?: title="[^"]*")?( data-v="[^"]*")?>(.*?)</td>')
    return [[v[9:-1] if v else t for v, t in cell.findall(r)] for r in rows]


def _with_script(page: Path, script: str, target: Path) -> Path:
    html = page.read_text(encoding="utf-8")
    target.write_text(html.replace("</body>", f"<script>{script}</script></body>"), "utf-8")
    return target


def test_hand_built_report_loads_and_renders(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    render_html(samples.sample_report(), samples.sample_gallery(), page)
    assert page_status(page) == "ok"
    shot = tmp_path / "shot.png"
    screenshot(page, shot, width=1200, height=1600)
    _check_screenshot(shot, 1200, 1600)
    null_page = tmp_path / "null.html"
    render_html(samples.null_report(), [], null_page)
    assert page_status(null_page) == "ok"


def test_frames_table_sorts_on_click(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    render_html(samples.sample_report(), [], page)
    rows = _frame_rows(dump_dom(page))
    assert len(rows) == 24 and [r[2] for r in rows[:2]] == ["0016E5_07959", "0016E5_07960"]
    # Column 3 is mean IoU; column 6 is car IoU, missing in one frame (sorts last).
    click = "document.querySelectorAll('#frames-table thead th')[{}].click();"
    sorted_page = _with_script(page, click.format(6), tmp_path / "sorted.html")
    rows = _frame_rows(dump_dom(sorted_page))
    car = [r[6] for r in rows]
    assert car[-1] == "" and car[:-1] == sorted(car[:-1], key=float)
    twice = _with_script(page, click.format(3) * 2, tmp_path / "desc.html")
    mean = [float(r[3]) for r in _frame_rows(dump_dom(twice))]
    assert mean == sorted(mean, reverse=True) and len(mean) == 24


def test_broken_pages_are_reported(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    render_html(samples.sample_report(4), [], page)
    html = page.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    uri = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]{40})", html)
    assert uri
    broken.write_text(html.replace(uri.group(1), "!!notbase64" * 4, 1), encoding="utf-8")
    assert page_status(broken) == "broken-images:1"
    throws = _with_script(page, "throw new Error('boom <x>');", tmp_path / "throws.html")
    status = page_status(throws)
    assert status.startswith("script-error: ") and "boom <x>" in status
    plain = tmp_path / "plain.html"
    plain.write_text("<html><body><p>no hook</p></body></html>", encoding="utf-8")
    assert page_status(plain) == "missing"


def test_missing_browser_and_page_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="report page not found"):
        page_status(tmp_path / "nope.html")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no Chromium browser found on PATH"):
        find_browser()
    page = tmp_path / "p.html"
    page.write_text("<html></html>", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no Chromium browser found"):
        screenshot(page, tmp_path / "s.png")


def _engine() -> Any:
    """The report engine's public entry point, or skip while it does not exist."""
    try:
        from drivingseg.report import write
    except ImportError as exc:
        pytest.skip(f"the report engine (drivingseg.report.write) is not importable: {exc}")
    return write


def test_real_report_in_browser(
    browser: str, kitti_object_root: Path, camvid_root: Path, tmp_path: Path
) -> None:
    """The engine's report on real KITTI-layout and CamVid frames loads cleanly in Chromium."""
    write = _engine()
    from drivingseg.model.checkpoint import default_weights

    out = tmp_path / "report"
    inputs = [kitti_object_root, camvid_root / "val"]
    report = write.make_report(inputs, default_weights(), out, workers=1, limit=6, gallery=4,
                               command="pytest test_real_report_in_browser")
    assert not report["failures"], report["failures"]
    assert report["segmentation"] and report["detection"]
    page = out / "report.html"
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", html)
    assert html.count('<img src="data:image/png;base64,') >= 6  # plots
    assert html.count('<img src="data:image/jpeg;base64,') >= 4  # gallery panels
    assert page_status(page) == "ok"
    shot = tmp_path / "shot.png"
    screenshot(page, shot, width=1400, height=2600)
    _check_screenshot(shot, 1400, 2600)
    REAL_SCREENSHOT.write_bytes(shot.read_bytes())
