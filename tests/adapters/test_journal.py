"""The per-sample journal of the request loop: resume, fingerprint invalidation, torn/corrupt files, bad folders.

A counting fake backend stands in for the model (the loop and journal are what is tested); the end-to-end
kill -9 tests against a real HTTP server are in test_resume_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from loguru import logger
from medvision_adapters.backends import GenRequest, GenResult
from medvision_adapters.chat import MedVisionChatModel, MedVisionV0
from medvision_adapters.errors import AdapterConfigError
from medvision_adapters.journal import JOURNAL_ENV, journal_dir, output_path_from_argv
from PIL import Image

TASK = "medvision_demo_tl_kits23_task01_axial"


class CountingBackend:
    """Answers "answer:<row>:<n>" where n counts the backend calls so far; records every request."""

    name = "fake"

    def __init__(self) -> None:
        self.requests: list[GenRequest] = []

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        self.requests.extend(requests)
        return [GenResult(f"answer:{r.key[1]}:{len(self.requests)}", prompt_tokens=3) for r in requests]


@pytest.fixture
def journal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "out" / "medvision_journal"
    monkeypatch.setenv(JOURNAL_ENV, str(folder))
    monkeypatch.setattr(MedVisionChatModel, "_make_backend", lambda self, *a: CountingBackend())
    return folder


def image(value: int = 100, poke: bool = False) -> Image.Image:
    array = np.full((32, 24, 3), value, dtype=np.uint8)
    if poke:
        array[5, 7, 0] += 1
    return Image.fromarray(array)


def requests_for(
    model: MedVisionChatModel, prompts: list[str], gen_kwargs: dict[str, Any] | None = None, poke: int = -1
) -> list[Any]:
    docs = {i: {"mv_row": 100 + i} for i in range(len(prompts))}
    model.task_dict = {TASK: {"test": docs}}
    return [
        SimpleNamespace(
            args=(p, dict(gen_kwargs or {"until": []}), lambda doc, i=i: [image(poke=i == poke)], i, TASK, "test")
        )
        for i, p in enumerate(prompts)
    ]


def texts(answers: list[Any]) -> list[str]:
    return [a.text for a in answers]


def sent(model: MedVisionChatModel) -> int:
    return len(model.backend_impl.requests)


def test_rerun_reuses_every_finished_answer(journal_env: Path) -> None:
    first = MedVisionV0()
    answers = first.generate_until(requests_for(first, ["a", "b", "c"]))
    assert sent(first) == 3
    again = MedVisionV0()
    assert texts(again.generate_until(requests_for(again, ["a", "b", "c"]))) == texts(answers)
    assert sent(again) == 0
    files = list(journal_env.glob("*.rank0.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize(
    "change",
    ["prompt", "pixel", "generation", "geometry", "model_arg"],
)
def test_fingerprint_changes_invalidate(journal_env: Path, change: str) -> None:
    base = MedVisionV0()
    base.generate_until(requests_for(base, ["a", "b"]))
    kwargs: dict[str, Any] = {}
    if change == "geometry":
        kwargs["geometry"] = "fixed(448)"
    if change == "model_arg":
        kwargs["greedy"] = True
    model = MedVisionV0(**kwargs)
    prompts = ["a", "b changed"] if change == "prompt" else ["a", "b"]
    gen = {"until": [], "max_new_tokens": 7} if change == "generation" else None
    reqs = requests_for(model, prompts, gen, poke=1 if change == "pixel" else -1)
    answers = model.generate_until(reqs)
    expected = 2 if change in ("generation", "geometry", "model_arg") else 1
    assert sent(model) == expected, f"{change}: {sent(model)} request(s) sent"
    assert answers[1].text.endswith(f":{expected}")


def test_checkpoint_change_invalidates(journal_env: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights-1")
    first = MedVisionV0(pretrained=str(ckpt))
    first.generate_until(requests_for(first, ["a"]))
    same = MedVisionV0(pretrained=str(ckpt))
    same.generate_until(requests_for(same, ["a"]))
    assert sent(same) == 0
    (ckpt / "model.safetensors").write_bytes(b"weights-two")
    changed = MedVisionV0(pretrained=str(ckpt))
    changed.generate_until(requests_for(changed, ["a"]))
    assert sent(changed) == 1


def test_torn_tail_and_corrupt_lines_are_dropped_with_a_warning(journal_env: Path) -> None:
    first = MedVisionV0()
    first.generate_until(requests_for(first, ["a", "b", "c"]))
    first.open_journal().close()  # the process ended (its lock is released)
    (path,) = journal_env.glob("*.jsonl")
    lines = path.read_bytes().split(b"\n")  # header, a, b, c, ""
    lines[2] = b'{"k": "broken'  # corrupt entry b
    path.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][: len(lines[3]) // 2])  # c cut mid-line
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        again = MedVisionV0()
        answers = again.generate_until(requests_for(again, ["a", "b", "c"]))
    finally:
        logger.remove(sink)
    assert sent(again) == 2 and answers[0].text == "answer:100:1"
    assert any("incomplete last line" in m for m in messages)
    assert any("1 corrupt line(s) skipped" in m for m in messages)
    data = path.read_text()  # the torn tail was cut before appending: every later entry is a whole line
    assert data.endswith("\n")
    assert [json.loads(line)["doc"] for line in data.splitlines()[3:]] == [1, 2]
    third = MedVisionV0()
    third.generate_until(requests_for(third, ["a", "b", "c"]))
    assert sent(third) == 0


def test_journal_of_another_model_is_ignored_with_a_note(journal_env: Path) -> None:
    first = MedVisionV0()
    first.generate_until(requests_for(first, ["a"]))
    notes: list[str] = []
    sink = logger.add(lambda m: notes.append(str(m)), level="INFO")
    try:
        other = MedVisionV0(seed=5)
        other.generate_until(requests_for(other, ["a"]))
    finally:
        logger.remove(sink)
    assert sent(other) == 1
    assert sum("of another model or settings" in n for n in notes) == 1
    assert len(list(journal_env.glob("*.jsonl"))) == 2


def test_unwritable_output_folder_fails_before_the_model_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(JOURNAL_ENV, str(blocker / "journal"))
    built: list[str] = []
    monkeypatch.setattr(MedVisionChatModel, "_make_backend", lambda self, *a: built.append("loaded"))
    with pytest.raises(AdapterConfigError, match=r"cannot write the run journal in .*a-file/journal"):
        MedVisionV0()
    assert built == []


def test_journal_folder_comes_from_output_path_or_the_variable(tmp_path: Path) -> None:
    argv = ["lmms-eval", "--model", "m", "--output_path", str(tmp_path / "o")]
    assert output_path_from_argv(argv) == str(tmp_path / "o")
    assert output_path_from_argv(["x", f"--output_path={tmp_path}"]) == str(tmp_path)
    assert journal_dir({}, argv) == tmp_path / "o" / "medvision_journal"
    assert journal_dir({JOURNAL_ENV: "off"}, argv) is None
    assert journal_dir({JOURNAL_ENV: str(tmp_path / "j")}, argv) == tmp_path / "j"
    assert journal_dir({}, ["lmms-eval", "--model", "m"]) is None


def test_openai_pool_results_are_journaled_as_they_complete(journal_env: Path) -> None:
    """A backend that reports each result: the journal holds entry i before request i+1 is answered."""
    seen_lines: list[int] = []

    class Streaming(CountingBackend):
        reports_each_result = True

        def generate(self, requests, on_result=None):  # type: ignore[override]
            out = []
            for index, req in enumerate(requests):
                self.requests.append(req)
                (path,) = list(journal_env.glob("*.jsonl")) or [None]
                seen_lines.append(len(path.read_text().splitlines()) if path else 0)
                result = GenResult(f"answer:{req.key[1]}")
                on_result(index, result)
                out.append(result)
            return out

    model = MedVisionV0()
    model.backend_impl = Streaming()
    model.generate_until(requests_for(model, ["a", "b", "c"]))
    assert seen_lines == [0, 2, 3]  # no file before the first answer; header + 1, header + 2 after
