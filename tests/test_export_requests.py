"""export-requests -> docs/runners/run_external.py -> medvision_replay on the demo (docs/reference.md §7.6 route)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_utils import describe, read_records, results_json, run_lmms_eval, run_medvision_eval, samples_files
from PIL import Image

from medvision_tasks import hooks
from medvision_tasks.cli import main as medvision_eval
from medvision_tasks.export_requests import MANIFEST_FILE, REQUESTS_FILE, export_requests, stub_for
from medvision_tasks.preflight import expand
from medvision_tasks.prompts import prompt_sha1

RUNNER = Path(__file__).resolve().parents[1] / "docs" / "runners" / "run_external.py"
GEOMETRY = "clip336_pad"
DET_TASK = "medvision_demo_detection_kits23_task01_axial"
TL_TASK = "medvision_demo_tl_kits23_task01_axial"
AD_TASK = "medvision_demo_ad_feta24_task01_axial"
REPLAY_TASKS = (DET_TASK, TL_TASK, AD_TASK)
N_GT = 3  # rows answered with their ground truth in each replayed task


def demo_rows() -> dict[str, list[dict[str, Any]]]:
    """Task -> its rows, built in-process the way the task YAMLs build them."""
    return {s.name: hooks.build_rows(stub_for(s)) for s in expand(["medvision_demo"])}


def load_runner() -> Any:
    spec = importlib.util.spec_from_file_location("run_external", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """The real CLI: `medvision-eval export-requests --tasks medvision_demo --geometry clip336_pad`."""
    out = tmp_path_factory.mktemp("export") / "requests"
    proc = run_medvision_eval(
        ["export-requests", "--tasks", "medvision_demo", "--geometry", GEOMETRY, "--out", str(out)]
    )
    assert proc.returncode == 0, describe(proc)
    lines = [json.loads(line) for line in (out / REQUESTS_FILE).read_text().splitlines()]
    return out, lines


def test_export_prompts_images_and_manifest(exported, monkeypatch):
    out, lines = exported
    monkeypatch.setenv("MEDVISION_GEOMETRY", GEOMETRY)  # the in-process reference for the declared geometry
    rows = demo_rows()
    expected = sorted((task, doc["mv_row"]) for task, docs in rows.items() for doc in docs)
    assert sorted((x["task"], x["row"]) for x in lines) == expected
    by_key = {(t, r["mv_row"]): r for t, rs in rows.items() for r in rs}
    for line in lines:
        doc = by_key[(line["task"], line["row"])]
        prompt, perceived = hooks.prompt_and_geometry(doc)
        assert line["prompt"] == prompt and line["config"] == doc["mv_config"] and line["geometry"] == GEOMETRY
        if line["family"] == "detection":
            assert line["perceived"] is None
        else:
            assert line["perceived"]["rule"] == GEOMETRY and line["perceived"]["canvas"] == [336, 336]
            assert line["perceived"]["stated_spacing_wh"] == perceived["stated_spacing_wh"]
        assert line["image"] == f"images/{line['task']}/{line['row']:06d}.png"
    for line in lines[:: len(lines) // 10]:  # PNGs hold exactly what doc_to_visual renders
        doc = by_key[(line["task"], line["row"])]
        with Image.open(out / line["image"]) as png:
            assert png.mode == "RGB" and png.tobytes() == hooks.doc_to_visual(doc)[0].tobytes()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["geometry"] == GEOMETRY and manifest["requests"] == len(lines)
    assert manifest["tasks"][TL_TASK]["rows"] == len(rows[TL_TASK])
    assert manifest["tasks"][TL_TASK]["settings"]["geometry"] == GEOMETRY
    assert f"geometry={GEOMETRY}" in manifest["score_with"] and "medvision_replay" in manifest["score_with"]


def test_runner_then_replay_scores_ground_truth_and_keeps_geometry(exported, tmp_path):
    out, lines = exported
    rows = demo_rows()
    answers = {}
    for task in REPLAY_TASKS:
        for doc in rows[task][:N_GT]:
            answers[f"{doc['mv_config']}|{doc['mv_row']}"] = ", ".join(repr(v) for v in hooks.doc_to_target(doc))
    failing = f"{rows[TL_TASK][N_GT]['mv_config']}|{rows[TL_TASK][N_GT]['mv_row']}"
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    (tmp_path / "model.py").write_text(
        "import json, pathlib\n"
        f"ANSWERS = json.loads(pathlib.Path({str(tmp_path / 'answers.json')!r}).read_text())\n"
        "def generate(prompt, image_path, request):\n"
        "    assert pathlib.Path(image_path).is_file() and prompt == request['prompt']\n"
        "    key = f\"{request['config']}|{request['row']}\"\n"
        f"    if key == {failing!r}:\n"
        "        raise RuntimeError('out of memory')\n"
        "    return ANSWERS.get(key, '')\n"
    )
    responses = tmp_path / "responses.jsonl"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(out / REQUESTS_FILE), "--generate", f"{tmp_path / 'model.py'}:generate"]
        + ["--out", str(responses)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, describe(proc)
    written = [json.loads(line) for line in responses.read_text().splitlines()]
    assert len(written) == len(lines) and f"{len(lines)} request(s) answered (1 failed)" in proc.stderr
    (failed,) = [w for w in written if "error" in w]
    assert failed["response"] == "" and "RuntimeError: out of memory" in failed["error"]

    scored = tmp_path / "replay"
    proc = run_lmms_eval(
        ["--model", "medvision_replay", "--model_args", f"path={responses},geometry={GEOMETRY}"]
        + ["--tasks", ",".join(REPLAY_TASKS), "--output_path", str(scored), "--log_samples"]
    )
    assert proc.returncode == 0, describe(proc)
    results = results_json(scored)["results"]
    for task in REPLAY_TASKS:
        n = len(rows[task])
        assert results[task]["success_rate,none"] == pytest.approx(N_GT / n)
    assert results[DET_TASK]["iou,none"] == pytest.approx(N_GT / len(rows[DET_TASK]), abs=1e-4)  # failures: 0
    for task in (TL_TASK, AD_TASK):  # failures drop out of the error means
        assert results[task]["mae,none"] == pytest.approx(0.0, abs=1e-4)
        assert results[task]["mre,none"] == pytest.approx(0.0, abs=1e-6)
    exported_prompts = {(x["config"], x["row"]): x["prompt"] for x in lines}
    for task, path in samples_files(scored).items():
        for record in read_records(path):
            assert record["prompt_sha1"] == prompt_sha1(exported_prompts[(record["config"], record["row"])])
            if task != DET_TASK:
                assert record["geometry"]["rule"] == GEOMETRY and record["geometry"]["canvas"] == [336, 336]


def test_limit_override_and_restore(tmp_path, monkeypatch, capsys):
    import os

    monkeypatch.setenv("MEDVISION_GEOMETRY", "native")
    summary = export_requests([TL_TASK], "fixed(448)", tmp_path / "out", limit=2)
    assert summary.requests == 2 and summary.rows_by_task == {TL_TASK: 2}
    assert "MEDVISION_GEOMETRY='native' is overridden by --geometry 'fixed(448)'" in capsys.readouterr().err
    assert os.environ["MEDVISION_GEOMETRY"] == "native"
    lines = [json.loads(x) for x in (tmp_path / "out" / REQUESTS_FILE).read_text().splitlines()]
    assert [x["row"] for x in lines] == [0, 1] and lines[0]["perceived"]["canvas"] == [448, 448]
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["score_with"].endswith(f"--tasks {TL_TASK} --limit 2 --output_path OUT --log_samples")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "medvision_dem", "--geometry", GEOMETRY], "did you mean 'medvision_demo'"),
        (["--tasks", TL_TASK, "--geometry", "clip_336"], "unknown rule 'clip_336'"),
        (["--tasks", TL_TASK, "--geometry", GEOMETRY, "--limit", "0"], "expected a positive number"),
    ],
)
def test_cli_errors(tmp_path, capsys, argv, message):
    assert medvision_eval(["export-requests", *argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_runner_resume_skips_answered(exported, tmp_path):
    out, lines = exported
    runner = load_runner()
    calls: list[tuple[str, int]] = []

    def generate(prompt: str, image_path: str, request: dict[str, Any]) -> str:
        calls.append((request["config"], request["row"]))
        if len(calls) == 5:
            raise KeyboardInterrupt  # an interrupted run
        return "1, 2"

    target = tmp_path / "responses.jsonl"
    with pytest.raises(KeyboardInterrupt):
        runner.run(out / REQUESTS_FILE, generate, target)
    assert len(target.read_text().splitlines()) == 4
    count, failed = runner.run(out / REQUESTS_FILE, lambda p, i, r: "1, 2", target, resume=True)
    written = [json.loads(x) for x in target.read_text().splitlines()]
    assert count == len(lines) - 4 and failed == 0
    assert sorted((w["task"], w["config"], w["row"]) for w in written) == sorted(
        (x["task"], x["config"], x["row"]) for x in lines
    )
