"""CI regression gate (issue 5): the demo through the real CLI against the committed baseline, and planted
regressions that `medvision-eval compare` must catch beyond the tolerance and let pass within it.

The baseline is ``medvision-eval leaderboard <demo runs> --allow-demo --format json`` for medvision_random and
medvision_prior on medvision_demo (both deterministic). To accept an intended change of the demo numbers,
regenerate it explicitly and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_regression_gate.py && git diff tests/baselines
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from e2e_utils import describe, run_medvision_eval

pytestmark = pytest.mark.e2e

BASELINE = Path(__file__).parent / "baselines" / "demo_leaderboard.json"
UPDATE_VARIABLE = "UPDATE_GOLDEN"
FLOAT_NOISE = "*=1e-6"  # the demo is deterministic; this only absorbs last-digit float differences
PLANTED_FILE = "*_samples_medvision_demo_detection_kits23_task01_axial.jsonl"
FAILURE = "I cannot locate it."


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_runs")
    for model in ("medvision_random", "medvision_prior"):
        proc = run_medvision_eval(
            ["run", "--model", model, "--tasks", "medvision_demo", "--output_path", str(out / model)]
        )
        assert proc.returncode == 0, describe(proc)
    return out


def plant(demo_runs: Path, target: Path, failures: int) -> Path:
    """A copy of the demo runs where medvision_prior's first ``failures`` KiTS23 detection answers (kidney and
    kidney tumour rows) are replaced by an unparseable one."""
    shutil.copytree(demo_runs, target)
    (path,) = (target / "medvision_prior").rglob(PLANTED_FILE)
    lines = path.read_text(encoding="utf-8").splitlines()
    for index in range(failures):
        sample = json.loads(lines[index])
        sample["mv_record"]["response"] = FAILURE
        lines[index] = json.dumps(sample)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def compare(current: Path, *tolerance: str) -> tuple[int, str]:
    args = ["compare", str(BASELINE), str(current)]
    for value in tolerance:
        args += ["--tolerance", value]
    proc = run_medvision_eval(args)
    assert proc.returncode in (0, 1), describe(proc)
    return proc.returncode, proc.stdout


def test_demo_matches_the_committed_baseline(demo_runs: Path) -> None:
    if os.environ.get(UPDATE_VARIABLE) == "1":
        proc = run_medvision_eval(["leaderboard", str(demo_runs), "--allow-demo", "--format", "json"])
        assert proc.returncode == 0, describe(proc)
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        BASELINE.write_text(proc.stdout, encoding="utf-8")
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert {r["model"] for t in ("detection", "tl", "ad") for r in baseline[t]} == {"prior", "random"}
    code, out = compare(demo_runs, FLOAT_NOISE)
    assert code == 0, out
    assert out.splitlines()[-1] == "no regression beyond tolerance"


def test_planted_regression_within_tolerance_passes(demo_runs: Path, tmp_path: Path) -> None:
    # prior's first KiTS23 answer (a kidney row, one of 124 anatomy samples) fails: SR 100 -> 99.2 (-0.8 points)
    current = plant(demo_runs, tmp_path / "planted", failures=1)
    code, out = compare(current, "*=1")
    assert code == 0, out
    assert "within_tolerance" in out and "prior" in out
    code, out = compare(current, "*=0.1")  # the same drop is a regression under a tighter tolerance
    assert code == 1, out
    assert "regression" in out and "SR" in out


def test_planted_regression_beyond_tolerance_fails(demo_runs: Path, tmp_path: Path) -> None:
    # 30 of prior's KiTS23 detection answers fail: SR drops by 12 points on anatomy, 28 on tumour/lesion
    current = plant(demo_runs, tmp_path / "planted", failures=30)
    code, out = compare(current, "*=1")
    assert code == 1, out
    regressions = [line.split() for line in out.splitlines() if line.rstrip().endswith("regression")]
    found = {(row[1], row[2], row[3]) for row in regressions}
    assert found >= {("prior", group, metric) for group in ("anatomy", "tumor_lesion") for metric in ("SR", "IoU")}
    assert all(row[1] == "prior" for row in regressions)  # the random model is untouched
    assert out.splitlines()[-1].endswith("regression(s) beyond tolerance")
