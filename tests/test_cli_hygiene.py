"""CLI value errors and self-explaining output (issue 14): one line naming the value, the valid choices and the
closest match, exit 2, no traceback; `list` header and counts; `run --help`; `batch_size` as a model arg;
`export` without a root; doctor scoped to the demo."""

from __future__ import annotations

import shutil

import pytest
from e2e_utils import run_medvision_eval

from medvision_tasks import settings
from medvision_tasks.cli import main


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("list", "--family", "tll"),
            "medvision-eval list: error: --family 'tll' is not valid; valid: detection, tl, ad; closest: 'tl'",
        ),
        (
            ("list", "--variant", "res33"),
            "medvision-eval list: error: --variant 'res33' is not valid; valid: main, res336, res560, res896, cot, "
            "detection_planeood, detection_taskood, tl_planeood, tl_taskood, demo, spacing, demo_spacing; "
            "closest: 'res336'",
        ),
        (
            ("export", "--config", "KiTS23_BoxSize_Task01_Axial_Test", "--split", "tets"),
            "medvision-eval export: error: --split 'tets' is not valid; valid: test, train; closest: 'test'",
        ),
        (
            ("leaderboard", "runs", "--format", "tex"),
            "medvision-eval leaderboard: error: --format 'tex' is not valid; valid: text, md, csv, latex, json; "
            "closest: 'text'",
        ),
        (
            ("leaderboard", "runs", "--preset", "papr"),
            "medvision-eval leaderboard: error: --preset 'papr' is not valid; valid: v1, paper; closest: 'paper'",
        ),
        (
            ("leaderboard", "runs", "--parse", "lastk"),
            "medvision-eval leaderboard: error: --parse 'lastk' is not valid; valid: as-run, last_k, answer_tag; "
            "closest: 'last_k'",
        ),
    ],
)
def test_bad_values_give_one_line_and_exit_2(capsys, argv, message) -> None:
    code, out, err = _main(capsys, *argv)
    assert code == 2 and out == ""
    assert err == message + "\n"


def test_value_error_in_a_subprocess_has_no_traceback() -> None:
    proc = run_medvision_eval(["list", "--family", "detectoin"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "medvision-eval list: error: --family 'detectoin' is not valid; valid: detection, tl, ad; closest: 'detection'"
    ]


def test_list_header_and_counts(capsys, monkeypatch) -> None:
    code, out, err = _main(capsys, "list", "--family", "detection", "--variant", "main")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "subtask\tconfig\ttest_rows\tevaluated"
    assert "test_rows: single-instance Test rows" in err and "MEDVISION_SAMPLE_CAP=1000" in err
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 28 and all(len(r) == 4 for r in rows)
    capped = [r for r in rows if r[2] != "-" and int(r[2]) > 1000]
    assert capped and all(r[3] == "1000" for r in capped)  # evaluated = after the 1000 cap
    monkeypatch.setenv("MEDVISION_SAMPLE_CAP", "0")
    settings.reset()  # settings are frozen once per process
    _, out, err = _main(capsys, "list", "--family", "detection", "--variant", "main")
    assert "no cap (MEDVISION_SAMPLE_CAP=0)" in err
    assert all(r[2] == r[3] for r in (line.split("\t") for line in out.splitlines()[1:]))


def test_export_without_root_suggests_demo_flag(capsys, monkeypatch) -> None:
    monkeypatch.delenv("MEDVISION_DATA_DIR", raising=False)
    code, _, err = _main(capsys, "export", "--config", "KiTS23_BoxSize_Task01_Axial_Test")
    assert code == 2 and "--tasks" not in err
    assert err.strip() == (
        "error: MEDVISION_DATA_DIR is not set and no --root given; point it at a MedVision data root (the folder "
        "holding Datasets/), or add --demo to read the bundled phantom root."
    )


def test_run_help_says_what_run_adds_then_lmms_eval_help() -> None:
    proc = run_medvision_eval(["run", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: medvision-eval run <lmms-eval arguments>")
    ours = proc.stdout.index("exit status 1")
    assert proc.stdout.index("--model_args MODEL_ARGS") > ours  # lmms-eval's own help follows


def test_batch_size_model_arg_is_rejected_before_lmms_eval_starts() -> None:
    proc = run_medvision_eval(
        ["run", "--model", "medvision_random", "--model_args", "seed=1,batch_size=4", "--tasks", "medvision_demo"]
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "medvision-eval run: error: --model medvision_random: batch_size is not a --model_args key; use "
        "lmms-eval's --batch_size flag (e.g. --batch_size 4)."
    )

@pytest.mark.parametrize(
    ("model", "model_args", "message"),
    [
        (
            "medvision_random",
            "sede=1",
            "--model medvision_random: unknown --model_args key 'sede'. Did you mean 'seed'? Valid keys: backend, "
            "device, pretrained, seed.",
        ),
        (
            "medvision_qwen2_5_vl",
            "backend=vlm",
            "--model medvision_qwen2_5_vl: unknown backend 'vlm'. Did you mean 'vllm'? Choose one of: hf, vllm, "
            "openai.",
        ),
        ("medvision_qwen2_5_vl", "backend=openai,max_batch_size=2", "max_batch_size is not a --model_args key"),
    ],
)
def test_bad_model_args_are_one_line_before_lmms_eval_starts(model: str, model_args: str, message: str) -> None:
    proc = run_medvision_eval(["run", "--model", model, "--model_args", model_args, "--tasks", "medvision_demo"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("medvision-eval run: error: ") and message in line



def test_batch_size_model_arg_through_lmms_eval_names_the_flag() -> None:
    from medvision_adapters.baselines import RandomBaseline
    from medvision_adapters.errors import AdapterConfigError

    with pytest.raises(AdapterConfigError, match=r"^--model medvision_random: batch_size is not a --model_args key; "):
        RandomBaseline.create_from_arg_string("batch_size=4", {"batch_size": 1})
    with pytest.raises(AdapterConfigError, match=r"Valid keys: backend, device, pretrained, seed\.$"):
        RandomBaseline.create_from_arg_string("sed=4", {"batch_size": 1})
    assert RandomBaseline.create_from_arg_string("seed=4", {"batch_size": 2}).batch_size_per_gpu == 2


def test_doctor_demo_scope_checks_the_phantom_root(demo_root, tmp_path, capsys) -> None:
    copy = tmp_path / "demo"
    shutil.copytree(demo_root, copy)
    image = sorted((copy / "Datasets" / "KiTS23").rglob("*.nii.gz"))[0]
    image.unlink()
    code, out, _ = _main(capsys, "doctor", "--tasks", "medvision_demo", "--root", str(copy))
    assert code == 1 and "8 demo subtask(s): checking the phantom root they read" in out
    assert str(image) in out


def test_replay_run_gets_a_readable_output_folder(tmp_path) -> None:
    responses = tmp_path / "saved" / "responses.jsonl"
    responses.parent.mkdir()
    responses.write_text('{"config": "KiTS23_TumorLesionSize_Task01_Axial_Test", "row": 0, "response": "30, 20"}\n')
    out = tmp_path / "out"
    proc = run_medvision_eval(
        [
            "run",
            "--model", "medvision_replay",
            "--model_args", f"path={responses}",
            "--tasks", "medvision_demo_tl_kits23_task01_axial",
            "--limit", "2",
            "--output_path", str(out),
            "--verbosity", "WARNING",
        ]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["medvision_journal", "medvision_replay__responses", "medvision_runs"]  # journal, results, runs
    assert list((out / "medvision_replay__responses").glob("*_results.json"))
