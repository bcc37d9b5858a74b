"""The documented spacing study on the demo root, through the real lmms-eval and medvision-eval CLIs."""

from __future__ import annotations

import json

from e2e_utils import describe, read_records, run_lmms_eval, run_medvision_eval, samples_files

from medvision_tasks import hooks
from medvision_tasks.catalogue import YAML_DIR, build_subtasks, groups, read_catalogue


def test_spacing_study_on_the_demo_with_an_oracle_replay_and_the_random_baseline(tmp_path):
    subtasks = build_subtasks(read_catalogue())
    variants = groups(subtasks)["medvision_demo_spacing"][0]
    bases = sorted({s.base_task for s in subtasks if s.name in variants})
    lines = []
    for task in [*bases, *variants]:
        (stub,) = YAML_DIR.glob(f"*/stubs/{task}.jsonl")
        for doc in hooks.build_rows(json.loads(stub.read_text())):
            answer = ", ".join(repr(v) for v in hooks.doc_to_target(doc))  # spacing-aware: the GT of the task asked
            lines.append(
                json.dumps({"task": task, "config": doc["mv_config"], "row": doc["mv_row"], "response": answer})
            )
    responses = tmp_path / "oracle.jsonl"
    responses.write_text("\n".join(lines) + "\n")
    tasks = ",".join([*bases, "medvision_demo_spacing"])
    out = tmp_path / "runs"
    proc = run_lmms_eval(
        ["--model", "medvision_replay", "--model_args", f"path={responses}", "--tasks", tasks,
         "--output_path", str(out / "oracle"), "--log_samples"]
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    proc = run_lmms_eval(
        ["--model", "medvision_random", "--tasks", tasks, "--output_path", str(out / "random"), "--log_samples"]
    )
    assert proc.returncode == 0, describe(proc)
    found = samples_files(out / "oracle")
    assert set(variants) <= set(found)
    record = read_records(found[variants[0]])[0]
    assert record["spacing"]["k"] in (0.5, 2.0) and record["spacing"]["base_task"] in bases

    board = run_medvision_eval(["leaderboard", str(out), "--allow-demo", "--format", "json"])
    assert board.returncode == 0, describe(board)
    rows = {(r["model"], r["group"]): r for r in json.loads(board.stdout)["spacing"]["rows"]}
    assert rows[("replay", "tl")]["e median"] == 1.0 and rows[("replay", "distance")]["e median"] == 1.0
    assert rows[("replay", "angle")]["angle |d| median"] == 0.0
    # medvision_random is seeded by (config, row): the same answer whatever k is, a spacing-blind baseline
    assert rows[("random", "tl")]["e median"] == 0.0 and rows[("random", "distance")]["e median"] == 0.0
    text = run_medvision_eval(["leaderboard", str(out), "--allow-demo"])
    assert text.returncode == 0 and "Spacing sensitivity" in text.stdout, describe(text)
