"""The viewer's build, geometry and bad-input handling on the phantom (no browser)."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from e2e_utils import describe, run_medvision_eval
from viewer_utils import read_samples

from medvision_tasks.viewer.build import Builder, OutputFolderError, build_viewer, select_images
from medvision_tasks.viewer.load import load_samples
from medvision_tasks.viewer.scene import RowSource, display_frame, overlay, render_display


def _records(demo_runs: Path, family: str, model: str = "prior") -> list[dict]:
    return [s["mv_record"] for s in read_samples(demo_runs / model) if s["mv_record"]["family"] == family]


def _mask_bbox(doc: dict, record: dict) -> tuple[int, int, int, int]:
    mask = np.asarray(nib.load(doc["mask_file"]).dataobj)
    plane = np.take(mask, int(record["slice_idx"]), axis=int(record["slice_dim"]))
    rows, cols = np.nonzero(plane == int(record["label"]))
    return int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())


def test_gt_box_encloses_exactly_the_mask_pixels(demo_runs):
    """Every demo detection record: the drawn GT outline is the outline of that label's pixels on that slice."""
    rows = RowSource(None)
    records = _records(demo_runs, "detection")
    assert len(records) > 100
    for record in records:
        doc, note = rows.doc(record)
        assert doc is not None, note
        r0, c0, r1, c1 = _mask_bbox(doc, record)
        frame = display_frame(record)
        assert (frame.width, frame.height) == tuple(reversed(record["image_size_2d"]))
        assert overlay(record, frame, doc)["gt_box"] == [c0, r0, c1 + 1, r1 + 1], record["row"]


def test_prediction_equal_to_gt_is_drawn_on_the_gt_box(demo_runs):
    record = dict(_records(demo_runs, "detection")[0])
    record.update(parsed=list(record["target"]), success=True)
    shapes = overlay(record, display_frame(record), None)
    assert shapes["pred_box"] == pytest.approx(shapes["gt_box"], abs=1e-9)
    record.update(parsed=[0.0, 0.0, 0.5, 0.5])  # lower-left quarter: bottom-left in the top-left display frame
    w, h = record["image_size_2d"][1], record["image_size_2d"][0]
    assert overlay(record, display_frame(record), None)["pred_box"] == [0, h / 2, w / 2 + 1, h + 1]


def test_resolution_variant_scales_the_box_with_the_render(demo_runs):
    """A reshape-N record: the image is N x N and the box follows the zoomed mask (within one display pixel)."""
    from scipy.ndimage import zoom

    record = json.loads(json.dumps(_records(demo_runs, "detection")[3]))
    record["settings"]["reshape"] = 128
    doc, note = RowSource(None).doc(record)
    assert doc is not None, note
    frame = display_frame(record)
    assert render_display(record, doc, frame).size == (128, 128)
    mask = np.asarray(nib.load(doc["mask_file"]).dataobj)[:, :, int(record["slice_idx"])] == int(record["label"])
    zoomed = zoom(mask.astype(np.float32), (128 / mask.shape[0], 128 / mask.shape[1]), order=0) > 0.5
    rows, cols = np.nonzero(zoomed)
    x0, y0, x1, y1 = overlay(record, frame, doc)["gt_box"]
    assert abs(x0 - cols.min()) <= 1 and abs(x1 - (cols.max() + 1)) <= 1
    assert abs(y0 - rows.min()) <= 1 and abs(y1 - (rows.max() + 1)) <= 1


def test_ad_landmarks_sit_on_the_planted_pixels(demo_runs):
    """Ceph phantom: the landmarks are planted as 3x3 white marks; each drawn point is in its centre pixel."""
    rows = RowSource(None)
    records = [r for r in _records(demo_runs, "ad") if r["dataset"] == "Ceph-Biometrics-400"]
    assert records
    for record in records:
        doc, note = rows.doc(record)
        assert doc is not None, note
        shapes = overlay(record, display_frame(record), doc)
        assert "note" not in shapes, shapes.get("note")
        image = np.asarray(render_display(record, doc, display_frame(record)))[:, :, 0]
        planted = json.loads(gzip.decompress(Path(doc["landmark_file"]).read_bytes()))
        assert len(shapes["lines"]) == (1 if record["metric_type"] == "distance" else 2)
        for name, (x, y) in shapes["points"].items():
            assert (int(y), int(x)) == tuple(planted[name][1:]), name
            assert image[int(y), int(x)] == 255  # the planted mark after min-max
            assert x % 1 == 0.5 and y % 1 == 0.5  # the centre of the pixel


def test_tl_axes_end_on_the_mask_edges(demo_runs):
    """KiTS23 T/L phantom (v1.0.0 end points on pixel edges): the drawn axes span the lesion's bounding box."""
    rows = RowSource(None)
    for record in _records(demo_runs, "tl")[:10]:
        doc, note = rows.doc(record)
        assert doc is not None, note
        r0, c0, r1, c1 = _mask_bbox(doc, record)
        pts = overlay(record, display_frame(record), doc)["points"]
        xs = sorted(p[0] for p in pts.values())
        ys = sorted(p[1] for p in pts.values())
        assert xs[0] == c0 and xs[-1] == c1 + 1
        assert ys[0] == r0 and ys[-1] == r1 + 1


def test_canvas_frame_resizes_image_and_landmarks(demo_runs):
    """A record whose geometry states a 2x canvas: the image is the canvas and the points scale with it."""
    record = json.loads(json.dumps(_records(demo_runs, "tl")[0]))
    h, w = record["image_size_2d"]
    doc, _ = RowSource(None).doc(record)
    native = overlay(record, display_frame(record), doc)["points"]
    record["geometry"].update(canvas=[2 * h, 2 * w], content=[2 * h, 2 * w])
    frame = display_frame(record)
    assert render_display(record, doc, frame).size == (2 * w, 2 * h)
    scaled = overlay(record, frame, doc)["points"]
    for name, (x, y) in native.items():
        assert scaled[name] == [2 * x, 2 * y]


def test_build_counts_prompts_and_images(demo_runs, tmp_path):
    out = tmp_path / "viewer"
    summary = build_viewer([demo_runs / "prior", demo_runs / "random"], out, progress=False)
    samples = read_samples(demo_runs)
    assert summary.records == len(samples)
    table = json.loads((out / "data" / "table.js").read_text()[len("MV.table(") : -3])
    assert len(table["rows"]) == len(samples)
    assert 0 < summary.images < len(samples) and summary.image_failures == 0
    for name in ("index.html", "viewer.js", "viewer.css", ".medvision-viewer"):
        assert (out / name).is_file()
    assert "http" not in (out / "index.html").read_text().replace("http-equiv", "")


def test_rebuilt_prompt_equals_the_run_prompt(demo_runs):
    """Without the logged `input`, the prompt is rebuilt from the row and matches the record's prompt_sha1."""
    report = load_samples([demo_runs / "prior"])
    builder = Builder(report, Path("."))
    from medvision_tasks.prompts import prompt_sha1

    by_family = {}
    for entry in report.entries:
        by_family.setdefault(entry.record["family"], entry)
    for entry in by_family.values():
        logged = entry.logged_prompt
        entry.logged_prompt = None
        doc, note = builder.doc_for(entry)
        text, source = builder.prompt(entry, doc, note)
        assert text == logged and prompt_sha1(text) == entry.record["prompt_sha1"], source


def test_default_selection_is_bounded_and_seeded(demo_runs):
    entries = load_samples([demo_runs]).entries
    first, again = select_images(entries, 5, seed=0), select_images(entries, 5, seed=0)
    assert first == again
    assert select_images(entries, "none") == set() and len(select_images(entries, "all")) == len(entries)
    assert len(first) < len(entries)
    for task in {e.record["task"] for e in entries if e.record["family"] == "detection"}:
        for model in ("random", "prior"):
            mine = [e for e in entries if e.record["task"] == task and e.model == model]
            ious = [(e.record["metrics"]["iou"], e.sid) for e in mine]
            chosen = [iou for iou, sid in ious if sid in first]
            assert min(chosen) == min(ious)[0] and max(chosen) == max(ious)[0], (task, model)


def test_bad_input_files_and_lines(demo_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(demo_runs / "prior", run)
    good = sorted(run.glob("*_samples_*.jsonl"))[0]
    n_good = len(good.read_text().splitlines())
    with good.open("a") as fh:
        fh.write("{not json\n")
        fh.write('{"doc_id": 1, "mv_rec\n')
    foreign = run / "20260101_000000_samples_mmmu_val.jsonl"
    foreign.write_text(json.dumps({"doc_id": 0, "resps": ["x"]}) + "\n")
    report = load_samples([run])
    assert report.malformed == {str(good): 2}
    assert str(foreign) in report.skipped_files
    assert any(str(foreign) in w and "mv_record" in w for w in report.warnings)
    assert sum(1 for e in report.entries if e.source == str(good)) == n_good
    proc = run_medvision_eval(["view", str(run), "--images", "none"])
    assert proc.returncode == 0, describe(proc)
    assert f"{foreign}: no mv_record" in proc.stderr and "2 malformed line(s) skipped" in proc.stderr


def test_existing_non_viewer_folder_refused_unless_force(demo_runs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderError, match="--force"):
        build_viewer([demo_runs / "prior"], out, images="none", progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    proc = run_medvision_eval(["view", str(demo_runs / "prior"), "--out", str(out), "--images", "none"])
    assert proc.returncode == 2 and "not a viewer folder" in proc.stderr
    build_viewer([demo_runs / "prior"], out, images="none", force=True, progress=False)
    assert not (out / "notes.txt").exists() and (out / "index.html").is_file()
    build_viewer([demo_runs / "prior"], out, images="none", progress=False)  # a viewer folder is rebuilt in place


def test_missing_data_root_shows_the_reason(demo_runs, tmp_path, monkeypatch):
    """A real-root record whose data root is absent: the sample still shows, with 'image unavailable: <path>'."""
    run = tmp_path / "run"
    run.mkdir()
    source = sorted((demo_runs / "prior").glob("*_samples_*detection_kits23*.jsonl"))[0]
    lines = []
    for line in source.read_text().splitlines():
        item = json.loads(line)
        item["mv_record"]["data_root_kind"] = "real"
        lines.append(json.dumps(item))
    (run / source.name).write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MEDVISION_DATA_DIR", str(tmp_path / "absent-root"))
    summary = build_viewer([run], tmp_path / "v", progress=False)
    assert summary.records == len(lines) and summary.images == 0 and summary.image_failures > 0
    text = "".join(p.read_text() for p in (tmp_path / "v" / "data").glob("detail-*.js"))
    assert "image unavailable: " + str(tmp_path / "absent-root") in text


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_binds_localhost_and_refuses_outside_paths(demo_runs, tmp_path):
    from medvision_tasks.viewer.serve import make_server

    summary = build_viewer([demo_runs / "prior"], tmp_path / "v", images="none", progress=False)
    (tmp_path / "secret.txt").write_text("outside")
    report = load_samples([demo_runs / "prior"])
    server = make_server(summary.out, Builder(report, summary.out), 0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = _get(base + "/")
        assert status == 200 and b"MedVision prediction viewer" in body
        assert _get(base + "/data/table.js")[0] == 200
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/data/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt",
                     "//etc/passwd", "/%2Fetc%2Fpasswd"):  # fmt: skip
            status, body = _get(base + path)
            assert status in (400, 404) and b"outside" not in body and b"root:" not in body, path
        assert _get(base + "/render/0123456789abcdef.png")[0] == 404  # well-formed, unknown
        assert _get(base + "/render/..%2f..%2fsecret.png")[0] == 400
        sid = report.entries[0].sid
        status, png = _get(f"{base}/render/{sid}.png")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.shutdown()
        server.server_close()


def test_view_serve_cli_binds_localhost(demo_runs, tmp_path):
    """The real console script with --serve: prints a 127.0.0.1 address, serves the page, refuses the rest."""
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [str(bin_dir / "medvision-eval"), "view", str(demo_runs / "prior"), "--out", str(tmp_path / "v"),
         "--images", "none", "--serve", "--port", "0"],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        for _ in range(5):
            line = proc.stdout.readline()
            if line.startswith("serving "):
                break
        assert line.startswith("serving http://127.0.0.1:"), line
        base = line.split()[1].rstrip("/")
        assert _get(base + "/index.html")[0] == 200
        assert _get(base + "/../../etc/passwd")[0] == 404
        assert _get(base + "/render/ffffffffffffffff.png")[0] == 404
        assert _get(base + "/render/x.png")[0] == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_padded_canvas_centres_the_content(demo_runs):
    """A rule that pads (content inside a larger canvas): image = canvas, content centred, points follow it."""
    record = json.loads(json.dumps(_records(demo_runs, "tl")[0]))
    h, w = record["image_size_2d"]
    doc, _ = RowSource(None).doc(record)
    native = overlay(record, display_frame(record), doc)["points"]
    record["geometry"].update(rule="clip336_pad", canvas=[336, 336], content=[2 * h, 2 * w])
    frame = display_frame(record)
    image = np.asarray(render_display(record, doc, frame))
    assert image.shape[:2] == (336, 336)
    off_y, off_x = (336 - 2 * h) // 2, (336 - 2 * w) // 2
    assert image[: off_y - 1].max() == 0 and image[:, : off_x - 1].max() == 0  # the padding is black
    for name, (x, y) in native.items():
        assert overlay(record, frame, doc)["points"][name] == [2 * x + off_x, 2 * y + off_y]


def test_images_all_shows_a_progress_bar_and_bad_counts_are_refused(demo_runs, tmp_path):
    proc = run_medvision_eval(["view", str(demo_runs / "prior"), "--out", str(tmp_path / "v"), "--images", "all"])
    assert proc.returncode == 0, describe(proc)
    assert "rendering images [" in proc.stderr
    n_images = len(list((tmp_path / "v" / "images").glob("*.png")))
    assert f"{n_images} images (0 unavailable)" in proc.stderr and f"{n_images}/{n_images}" in proc.stderr
    proc = run_medvision_eval(["view", str(demo_runs / "prior"), "--out", str(tmp_path / "w"), "--images", "-3"])
    assert proc.returncode == 2 and "--images '-3'" in proc.stderr


def test_release_landmark_format_is_read_per_plane_and_slice(tmp_path):
    # docs/reference.md §1.12: {"slice_landmarks_x|y|z": [{slice_idx, landmarks}]}; A/D landmarks are a
    # {name: [i, j, k]} dict, T/L landmarks a list of ellipses with P1..P4 (the phantom writes other layouts).
    from medvision_tasks.viewer.scene import slice_landmarks

    ellipse = {"P1": [3, 4, 7], "P2": [9, 4, 7], "P3": [6, 2, 7], "P4": [6, 6, 7], "ROI_pixels_count": 21}
    data = {
        "slice_landmarks_x": [{"slice_idx": 0, "landmarks": {"P1": [0, 10, 20], "P2": [0, 30, 40]}}],
        "slice_landmarks_y": [],
        "slice_landmarks_z": [{"slice_idx": 6, "landmarks": []}, {"slice_idx": 7, "landmarks": [ellipse]}],
    }
    path = tmp_path / "case.json.gz"
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    assert slice_landmarks(path, 0, 0) == {"P1": [0, 10, 20], "P2": [0, 30, 40]}
    assert slice_landmarks(path, 2, 7) == [ellipse]
    assert slice_landmarks(path, 2, 6) == []
    assert slice_landmarks(path, 2, 8) is None and slice_landmarks(path, 1, 0) is None
