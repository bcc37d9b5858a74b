"""Base class of every MedVision adapter: argument validation, registration, the request loop.

Subclasses implement `respond(doc, prompt, gen_kwargs, doc_to_visual) -> str`. A sample whose call
raises is recorded as an empty (failed) response with the reason; the run goes on.
"""

from __future__ import annotations

import math
from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger
from medvision_metrics.options import did_you_mean

from medvision_tasks import settings as mv_settings
from medvision_tasks.hooks import note_generation

from .errors import AdapterConfigError

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

    def generate_until(self, requests: list[Any]) -> list[str]:
        out: list[str] = []
        failures = 0
        for req in requests:
            prompt, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            doc = self.task_dict[task][split][doc_id]
            try:
                text = self.respond(doc, prompt, dict(gen_kwargs or {}), doc_to_visual)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one bad sample must not end the run
                failures += 1
                note_generation(task, int(doc.get("mv_row", doc_id)), error=f"{type(exc).__name__}: {exc}")
                text = ""
            out.append(text)
        if failures:
            logger.warning(f"{self.adapter_name}: {failures} request(s) failed; recorded as failed responses.")
        return out

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{self.adapter_name} only generates text.")

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError(f"{self.adapter_name} does not support multi-round generation.")


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
