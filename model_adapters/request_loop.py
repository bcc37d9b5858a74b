"""The one request loop of every MedVision adapter: prepare, look up the journal, generate, journal, report.

`run_requests(model, requests)` walks lmms-eval's requests in windows of `model.request_window`:

1. `model.prepare_request(request)` builds what the model needs (messages, images, sampling) and the
   request identity that keys the journal; a sample whose preparation raises is a counted failure
   (`AdapterConfigError`, a bad setting shared by all requests, stops the run).
2. A journal hit is replayed as if it had just been generated ("resumed" in the progress bar).
3. The misses go to `model.execute(batch, done)`, which calls `done(position, Entry)` as each response
   finishes (the openai worker pool: as each request completes; hf: per batch; vLLM: per `LLM.chat` call).
   `done` makes the entry durable in the journal before anything else happens, then
   `model.finish_entry` turns it into lmms-eval's answer (and the record's failure/truncation notes).

Progress is per request: done/total, rate and ETA from tqdm, with the resumed count beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from .errors import AdapterConfigError
from .journal import Entry, Journal


@dataclass
class Prepared:
    """One request ready for the model: where it came from, its journal identity and the model's payload."""

    index: int
    task: str
    doc_id: Any
    row: int
    identity: Any
    payload: Any
    key: str | None = None


class LoopModel(Protocol):
    adapter_name: str
    backend: str | None
    request_window: int

    @property
    def rank(self) -> int: ...

    def open_journal(self) -> Journal | None: ...

    def prepare_request(self, index: int, request: Any) -> Prepared: ...

    def execute(self, batch: list[Prepared], done: Callable[[int, Entry], None]) -> None: ...

    def finish_entry(self, prepared: Prepared, entry: Entry, fresh: bool) -> Any: ...

    def failed_answer(self, index: int, request: Any, error: str) -> Any: ...


class Progress:
    """tqdm bar over the requests of one call (rank 0 only) with a resumed count."""

    def __init__(self, total: int, desc: str, disable: bool) -> None:
        from tqdm import tqdm

        self.total = total
        self.resumed = 0
        self.bar = tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, smoothing=0.1)

    def hit(self) -> None:
        self.resumed += 1
        self.bar.set_postfix_str(f"resumed {self.resumed}", refresh=False)
        self.bar.update(1)

    def step(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_requests(model: LoopModel, requests: list[Any]) -> list[Any]:
    """Answers in request order (see the module docstring)."""
    journal = model.open_journal()
    answers: list[Any] = [None] * len(requests)
    label = f"{model.adapter_name} ({model.backend})" if model.backend else model.adapter_name
    progress = Progress(len(requests), label, disable=model.rank != 0)
    window = max(1, int(model.request_window))
    try:
        for start in range(0, len(requests), window):
            misses: list[Prepared] = []
            for index in range(start, min(start + window, len(requests))):
                try:
                    prepared = model.prepare_request(index, requests[index])
                except AdapterConfigError:
                    raise
                except Exception as exc:  # one unreadable sample must not end the run
                    answers[index] = model.failed_answer(index, requests[index], f"{type(exc).__name__}: {exc}")
                    progress.step()
                    continue
                if journal is not None:
                    prepared.key = journal.key(prepared.task, prepared.doc_id, prepared.identity)
                    entry = journal.get(prepared.key)
                    if entry is not None:
                        answers[index] = model.finish_entry(prepared, entry, False)
                        progress.hit()
                        continue
                misses.append(prepared)
            if not misses:
                continue

            def done(position: int, entry: Entry, batch: list[Prepared] = misses) -> None:
                prepared = batch[position]
                if journal is not None and prepared.key is not None:
                    journal.write(prepared.key, entry, prepared.task, prepared.doc_id)
                answers[prepared.index] = model.finish_entry(prepared, entry, True)
                progress.step()

            model.execute(misses, done)
            for prepared in misses:  # a model that did not report a request: a failure, never a silent gap
                if answers[prepared.index] is None:
                    done(misses.index(prepared), Entry("", error="no result"))
    finally:
        progress.close()
    if journal is not None and progress.resumed:
        logger.info(
            f"{label}: resumed {progress.resumed} of {len(requests)} request(s) from the journal in {journal.folder}; "
            f"{len(requests) - progress.resumed} generated."
        )
    return answers
