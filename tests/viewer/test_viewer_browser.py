"""The viewer in a real headless Chromium from file:// (Debian's /usr/bin/chromium through playwright)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from e2e_utils import describe, run_medvision_eval
from viewer_utils import read_samples

from medvision_tasks.prompts import prompt_sha1
from medvision_tasks.viewer.build import build_viewer
from medvision_tasks.viewer.scene import display_frame, overlay

GT = (0, 255, 0)
PRED = (255, 0, 255)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "figures" / "viewer.png"


@pytest.fixture(scope="module")
def viewer(demo_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("viewer") / "v"
    build_viewer([demo_runs / "random", demo_runs / "prior"], out, images="all", progress=False)
    return out


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rows tr")


def _shown(page) -> tuple[int, int]:
    count = page.locator("#count")
    return int(count.get_attribute("data-shown")), int(count.get_attribute("data-total"))


def _close(pixel, colour, tol=60) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(pixel[:3], colour))


def _near(shot, point, colour, vertical_edge: bool) -> bool:
    """The colour at the point or one pixel across the edge (an element screenshot may snap by one pixel)."""
    x, y = point
    candidates = [(x + d, y) if vertical_edge else (x, y + d) for d in (0, -1, 1)]
    w, h = shot.size
    return any(_close(shot.getpixel(c), colour) for c in candidates if 0 <= c[0] < w and 0 <= c[1] < h)


def test_demo_viewer_counts_filters_prompt_and_overlay(browser_page, viewer, demo_runs, tmp_path):
    from PIL import Image

    page = browser_page
    samples = read_samples(demo_runs)
    by_sid = {}
    from medvision_tasks.viewer.load import load_samples

    for entry in load_samples([demo_runs / "random", demo_runs / "prior"]).entries:
        by_sid[entry.sid] = entry
    _open(page, viewer.resolve().as_uri() + "/index.html")
    assert _shown(page) == (len(samples), len(samples))

    page.select_option("#f-model", "random")
    page.select_option("#f-family", "detection")
    expected = [e for e in by_sid.values() if e.model == "random" and e.record["family"] == "detection"]
    assert _shown(page) == (len(expected), len(samples))
    first_page = page.locator("#rows tr")
    assert first_page.count() == min(50, len(expected))
    cells = page.locator("#rows tr td:nth-child(1)").all_text_contents()
    assert set(cells) == {"random"}
    assert set(page.locator("#rows tr td:nth-child(2)").all_text_contents()) == {"detection"}

    row = page.locator("#rows tr").nth(2)
    sid = row.get_attribute("data-sid")
    entry = by_sid[sid]
    row.click()
    card = page.locator(f".card.current[data-sid='{sid}']")
    card.wait_for()
    prompt = card.locator(".prompt-user").text_content()
    assert prompt == entry.logged_prompt and prompt_sha1(prompt) == entry.record["prompt_sha1"]
    assert card.locator(".response").text_content() == entry.record["response"]
    canvas = card.locator("canvas.overlay")
    page.wait_for_selector(f".card.current[data-sid='{sid}'] canvas[data-ready='image']")
    zoom = float(canvas.get_attribute("data-zoom"))
    shot = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
    shot.save(tmp_path / "canvas.png")
    shapes = overlay(entry.record, display_frame(entry.record), None)
    gx0, gy0, gx1, gy1 = (v * zoom for v in shapes["gt_box"])
    px0, py0, px1, py1 = (v * zoom for v in shapes["pred_box"])
    import math

    ymid_g, xmid_g = int((gy0 + gy1) / 2), int((gx0 + gx1) / 2)
    ymid_p, xmid_p = int((py0 + py1) / 2), int((px0 + px1) / 2)
    w, h = shot.size
    pred_points = [(math.floor(px0) - 1, ymid_p, True), (math.ceil(px1), ymid_p, True),
                   (xmid_p, math.floor(py0) - 1, False), (xmid_p, math.ceil(py1), False)]  # fmt: skip
    pred_points = [(x, y, v) for x, y, v in pred_points if 0 <= x < w and 0 <= y < h]
    assert pred_points and all(_near(shot, (x, y), PRED, v) for x, y, v in pred_points), pred_points

    def in_pred_band(x: int, y: int) -> bool:
        outer = px0 - 4 <= x + 1 and x <= px1 + 4 and py0 - 4 <= y + 1 and y <= py1 + 4  # band + 1 px snap
        inner = px0 + 2 < x and x + 1 < px1 - 2 and py0 + 2 < y and y + 1 < py1 - 2
        return outer and not inner

    gt_points = [(int(gx0) + 1, ymid_g, True), (int(gx1) - 1, ymid_g, True), (xmid_g, int(gy0) + 1, False),
                 (xmid_g, int(gy1) - 1, False)]  # fmt: skip
    visible = [(x, y, v) for x, y, v in gt_points if not in_pred_band(x, y)]
    assert visible and all(_near(shot, (x, y), GT, v) for x, y, v in visible), visible
    # the image itself is under the overlay: the centre of the canvas is grey, not an overlay colour
    centre = shot.getpixel((int(w * 0.05), int(h * 0.05)))
    assert centre[0] == centre[1] == centre[2]

    before = sid
    page.keyboard.press("j")
    page.wait_for_function("sid => document.querySelector('.card.current').dataset.sid !== sid", arg=before)
    after = page.locator(".card.current").get_attribute("data-sid")
    assert after == page.locator("#rows tr").nth(3).get_attribute("data-sid")
    page.keyboard.press("k")
    page.wait_for_function("sid => document.querySelector('.card.current').dataset.sid === sid", arg=before)
    # side by side: the prior's answer to the same sample is shown beside it
    assert page.locator(".card").count() == 2
    assert set(page.locator(".card h3").all_text_contents()) == {"random", "prior"}

    page.select_option("#f-parse", "failed")
    assert _shown(page)[0] == sum(1 for e in expected if not e.record["success"])
    assert page.events == []  # type: ignore[attr-defined]

    if os.environ.get("UPDATE_VIEWER_SCREENSHOT") == "1":
        page.select_option("#f-parse", "")
        page.locator("#rows tr").nth(2).click()
        page.wait_for_selector(".card.current canvas[data-ready='image']")
        full = Image.open(io.BytesIO(page.screenshot(clip={"x": 0, "y": 0, "width": 1400, "height": 760})))
        small = full.convert("RGB").resize((1050, 570), Image.LANCZOS).quantize(colors=64)
        small.save(SCREENSHOT, optimize=True)


def test_leaderboard_cell_links_to_its_samples(browser_page, demo_runs, tmp_path):
    build_viewer([demo_runs], None, images="none", force=True, progress=False)
    out = tmp_path / "lb"
    proc = run_medvision_eval(["leaderboard", str(demo_runs), "--allow-demo", "--out", str(out)])
    assert proc.returncode == 0, describe(proc)
    page = browser_page
    page.goto((out / "leaderboard.html").resolve().as_uri())
    link = page.locator("a").first  # prior, detection, anatomy row
    href = link.get_attribute("href")
    assert "model=" in href and "keys=" in href
    result = json.loads((out / "leaderboard.json").read_text())
    row = result["detection"][0]
    link.click()
    page.wait_for_selector("#rows tr")
    from medvision_metrics.leaderboard_html import record_table_key

    keys = {d["region"] for d in result["details"]["detection_regions"]
            if d["model"] == row["model"] and d["group"] == row["group"] and d["in_row"]}  # fmt: skip
    records = [s["mv_record"] for s in read_samples(demo_runs)]
    from medvision_tasks.viewer.load import model_label

    expected = [r for r in records if model_label(r) == row["model"] and record_table_key(r) in keys]
    assert _shown(page)[0] == len(expected) == row["samples"]
    assert page.events == []  # type: ignore[attr-defined]


def test_replayed_markup_is_shown_as_text(browser_page, demo_runs, tmp_path):
    """XSS: a replayed response with markup, a closing textarea and template braces stays text, runs nothing."""
    evil = ('<script>alert("s")</script> <img src=x onerror="alert(1);console.log(\'pwned\')"> </textarea>'
            '<b>bold</b> {{ constructor.constructor("alert(2)")() }} ${alert(3)} 0.1, 0.2, 0.3, 0.4')  # fmt: skip
    responses = tmp_path / "responses.jsonl"
    task = "medvision_demo_detection_kits23_task01_axial"
    config = json.loads(
        sorted((demo_runs / "prior").glob(f"*_samples_{task}.jsonl"))[0].read_text().splitlines()[0]
    )["mv_record"]["config"]
    responses.write_text(json.dumps({"config": config, "row": 0, "response": evil}) + "\n")
    run = tmp_path / "replay"
    proc = run_medvision_eval(
        ["run", "--model", "medvision_replay", "--model_args", f"path={responses}", "--tasks", task,
         "--output_path", str(run), "--log_samples", "--verbosity", "WARNING"]  # fmt: skip
    )
    assert proc.returncode == 0, describe(proc)
    out = tmp_path / "v"
    build_viewer([run], out, images="all", progress=False)
    page = browser_page
    _open(page, out.resolve().as_uri() + "/index.html")
    page.select_option("#f-parse", "parsed")
    assert _shown(page)[0] == 1
    page.locator("#rows tr").first.click()
    card = page.locator(".card.current")
    card.wait_for()
    page.wait_for_selector(".card.current canvas[data-ready]")
    assert card.locator(".response").text_content() == evil
    assert page.locator("img").count() == 0 and page.locator("#detail b").count() == 0
    assert page.locator("#detail script").count() == 0
    page.wait_for_timeout(300)
    assert page.events == []  # type: ignore[attr-defined]
