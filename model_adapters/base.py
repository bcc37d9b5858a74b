"""Base class of every MedVision adapter: argument validation, registration, the request loop.

Subclasses implement `respond(doc, prompt, gen_kwargs, doc_to_visual) -> str` (or `respond_result` for a
`GenResult` with truncation and token counts). A sample whose call raises is recorded as an empty (failed)
response with the reason; the run goes on. Every adapter's `generate_until` is `request_loop.run_requests`,
which journals each finished response (journal.py) so that rerunning a killed run resumes it.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger
from medvision_metrics.options import did_you_mean

from medvision_tasks import settings as mv_settings
from medvision_tasks.hooks import note_generation

from .backends import GenResult
from .errors import AdapterConfigError
from .journal import Entry, Journal, check_writable, fingerprint, image_digest, journal_dir, model_identity
from .request_loop import Prepared, run_requests

COMMON_ARGS = ("pretrained", "backend", "batch_size", "device", "max_batch_size")
# lmms-eval passes its own --batch_size/--max_batch_size flags as keyword arguments; never model args.
HOST_FLAG_ARGS = ("batch_size", "max_batch_size")


def host_flag_message(adapter: str, key: str) -> str:
    """The error for a host flag given in --model_args (names the lmms-eval flag to use instead)."""
    return f"--model {adapter}: {key} is not a --model_args key; use lmms-eval's --{key} flag (e.g. --{key} 4)."


def check_model_args(adapter: str, given: dict[str, Any], valid: tuple[str, ...]) -> None:
    """Raise AdapterConfigError for any key not in `valid`, listing the valid keys and the closest one."""
    shown = sorted(k for k in valid if k not in HOST_FLAG_ARGS)
    for key in given:
        if key not in valid:
            hint = did_you_mean(key, shown)
            raise AdapterConfigError(
                f"--model {adapter}: unknown --model_args key {key!r}.{hint} Valid keys: {', '.join(shown)}."
            )


class MedVisionModel(lmms):
    """lmms-eval simple model with MedVision registration and a per-sample request loop."""

    is_simple = True
    adapter_name = "medvision_base"
    extra_args: tuple[str, ...] = ()
    geometry = "native"
    task_defaults: dict[str, Any] = {}
    # Journal: whether answers are journaled, whether the request identity hashes the images (else the doc),
    # how many requests one window of the loop prepares, and model arguments that cannot change an answer.
    journaled = True
    uses_images = True
    request_window = 1
    identity_ignored_args: tuple[str, ...] = (
        "batch_size",
        "max_batch_size",
        "device",
        "device_map",
        "num_concurrent",
        "max_retries",
        "timeout",
        "dump_requests",
        "base_url",
        "api_key_env",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "data_parallel_size",
        "png_compress_level",
        "repo_dir",
    )

    def __init__(
        self,
        pretrained: str | None = None,
        backend: str | None = None,
        batch_size: int | str = 1,
        device: str | None = None,
        max_batch_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        check_model_args(self.adapter_name, kwargs, COMMON_ARGS + self.extra_args)
        self.pretrained = pretrained
        self.backend = backend
        self.batch_size_per_gpu = int(batch_size or 1)
        self.model_kwargs = kwargs
        self._generation_record: Any = None
        self._journal: Journal | None = None
        self._journal_opened = False
        self.journal_folder = journal_dir() if self.journaled else None
        if self.journal_folder is not None:
            check_writable(self.journal_folder)  # before any weights load

    @classmethod
    def check_model_arg_keys(cls, given: dict[str, str]) -> None:
        """The key checks `__init__` makes, without constructing anything (`medvision-eval run` calls this
        before lmms-eval starts). Raises AdapterConfigError naming the key, the valid ones and the closest."""
        for key in HOST_FLAG_ARGS:
            if key in given:
                raise AdapterConfigError(host_flag_message(cls.adapter_name, key))
        check_model_args(cls.adapter_name, given, COMMON_ARGS + cls.extra_args)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None) -> Any:
        """lmms-eval's constructor path; a host flag (``batch_size``) in ``arg_string`` is an AdapterConfigError."""
        given = {part.split("=", 1)[0].strip() for part in (arg_string or "").split(",") if part.strip()}
        for key in HOST_FLAG_ARGS:
            if key in given:
                profile = getattr(cls, "profile", None)
                raise AdapterConfigError(host_flag_message(getattr(profile, "name", cls.adapter_name), key))
        return super().create_from_arg_string(arg_string, additional_config)

    def register(self, generation: dict[str, Any] | None = None) -> None:
        """Tell the task hooks which model is active (docs/reference.md §7.1)."""
        self._generation_record = generation
        mv_settings.register_active_model(
            {
                "adapter": self.adapter_name,
                "pretrained": self.pretrained,
                "backend": self.backend,
                "geometry": self.geometry,
                "generation": generation,
            },
            dict(self.task_defaults),
        )

    @property
    def device(self) -> Any:
        """Device lmms-eval uses for its rank gathers under `accelerate launch` (it reads `lm.device`)."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            return accelerator.device
        backend = getattr(self, "backend_impl", None)
        return getattr(backend, "input_device", None) or "cpu"

    def respond(self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any) -> str:
        raise NotImplementedError

    def generate_until(self, requests: list[Any]) -> list[Any]:
        self._failures = 0
        out = run_requests(self, requests)
        if self._failures:
            logger.warning(f"{self.adapter_name}: {self._failures} request(s) failed; recorded as failed responses.")
        return out

    # ------------------------------------------------------------------------------- request loop hooks
    def extra_identity(self) -> dict[str, Any]:
        """Adapter-specific parts of the model fingerprint (subclasses)."""
        return {}

    def journal_identity(self) -> dict[str, Any]:
        identity = model_identity(
            self.adapter_name,
            self.pretrained,
            self.backend,
            self.geometry,
            self._generation_record,
            self.model_kwargs,
            self.identity_ignored_args,
        )
        identity["extra"] = self.extra_identity()
        return identity

    def open_journal(self) -> Journal | None:
        """This process's journal (opened once, at the first request), or None when none is kept."""
        if not self._journal_opened:
            self._journal_opened = True
            if self.journal_folder is not None:
                self._journal = Journal(self.journal_folder, self.journal_identity(), self.adapter_name, self.rank)
        return self._journal

    def prepare_request(self, index: int, request: Any) -> Prepared:
        prompt, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        gen_kwargs = dict(gen_kwargs or {})
        identity: dict[str, Any] = {"prompt": prompt, "gen_kwargs": gen_kwargs}
        visual_fn = doc_to_visual
        if self.journaled and self.uses_images:
            visuals = list(doc_to_visual(doc) or [])
            identity["images"] = [image_digest(v) for v in visuals]

            def visual_fn(_doc: Any, _visuals: list[Any] = visuals) -> list[Any]:
                return _visuals
        elif self.journaled:
            identity["doc"] = fingerprint(doc)
        row = int(doc.get("mv_row", doc_id))
        return Prepared(index, task, doc_id, row, identity, (doc, prompt, gen_kwargs, visual_fn))

    def respond_result(
        self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any
    ) -> GenResult:
        return GenResult(self.respond(doc, prompt, gen_kwargs, doc_to_visual))

    def execute(self, batch: list[Prepared], done: Any) -> None:
        for position, prepared in enumerate(batch):
            try:
                result = self.respond_result(*prepared.payload)
                entry = Entry(result.text, result.error, result.truncated, None, result.completion_tokens)
            except (KeyboardInterrupt, SystemExit):
                raise
            except AdapterConfigError:
                raise
            except Exception as exc:  # one bad sample must not end the run
                entry = Entry("", error=f"{type(exc).__name__}: {exc}")
            done(position, entry)

    def finish_entry(self, prepared: Prepared, entry: Entry, fresh: bool) -> Any:
        if entry.error:
            self._failures += 1
        if entry.error or entry.truncated:
            note_generation(prepared.task, prepared.row, truncated=entry.truncated, error=entry.error)
        return "" if entry.error else entry.text

    def failed_answer(self, index: int, request: Any, error: str) -> Any:
        _, _, _, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        self._failures += 1
        note_generation(task, int(doc.get("mv_row", doc_id)), error=error)
        return ""

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{self.adapter_name} only generates text.")

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError(f"{self.adapter_name} does not support multi-round generation.")
