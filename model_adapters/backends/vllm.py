"""Offline vLLM backend: one `LLM.chat` call for the whole request list, sampling parameters per request.

docs/reference.md §7.2 and §7.7 bug 2: the official adapters built one `SamplingParams` from the last request of a batch
and dropped `until`; here every request gets its own parameters and `until` becomes vLLM's `stop`.

The vLLM surface used is deliberately small: `vllm.__version__`, `vllm.LLM(...)`, `LLM.chat(...)`,
`vllm.SamplingParams(...)`, and the outputs' `.outputs[0].text`, `.outputs[0].finish_reason`,
`.outputs[0].token_ids` and `.prompt_token_ids`.
"""

from __future__ import annotations

import os
from typing import Any

from loguru import logger
from PIL import Image

from ..errors import AdapterConfigError
from . import GenRequest, GenResult
from ._common import Option, data_url_part, read_options, read_sampling, to_chat_messages, version_at_most

VLLM_OPTIONS: dict[str, Option] = {
    "dtype": Option("str", None, nullable=True),
    "tensor_parallel_size": Option("int", 1, minimum=1),
    # One engine per `accelerate launch` process; read for validation and docs only (docs/reference.md §7.1).
    "data_parallel_size": Option("int", 1, minimum=1),
    "gpu_memory_utilization": Option("float", 0.9, minimum=0.05, maximum=1.0),
    "max_model_len": Option("int", None, nullable=True, minimum=1),
    "limit_mm_per_prompt": Option("dict", {"image": 1}),
    "trust_remote_code": Option("bool", False),
    "mm_processor_kwargs": Option("dict", None, nullable=True),
    "seed": Option("int", 0),
    "max_vllm_version": Option("version", None, nullable=True),
}

# From this vLLM release on, `LLM.chat` takes `{"type": "image_pil", "image_pil": PIL.Image}` parts, which
# skips the PNG encode + base64 + decode round trip (docs/reference.md §1.11). Older releases get PNG data URLs.
PIL_PARTS_MIN_VERSION = "0.10.0"
PNG_COMPRESS_LEVEL = 1


def _pil_part(image: Image.Image) -> dict[str, Any]:
    return {"type": "image_pil", "image_pil": image}


def devices_for_rank(visible: list[str], local_rank: int, tensor_parallel_size: int) -> list[str]:
    """The `tensor_parallel_size` devices of one data-parallel process: slice `local_rank` of `visible`.

    A launcher that already pinned the process (exactly `tensor_parallel_size` devices visible) is left alone.

    Raises:
        AdapterConfigError: fewer visible devices than processes × tensor_parallel_size.
    """
    if len(visible) == tensor_parallel_size:
        return list(visible)
    start = local_rank * tensor_parallel_size
    chosen = visible[start : start + tensor_parallel_size]
    if len(chosen) < tensor_parallel_size:
        raise AdapterConfigError(
            f"backend=vllm: process {local_rank} needs devices {start}..{start + tensor_parallel_size - 1} "
            f"(tensor_parallel_size={tensor_parallel_size}) but only {len(visible)} are visible ({','.join(visible)}); "
            "launch fewer processes or lower tensor_parallel_size."
        )
    return chosen


class VLLMBackend:
    """`vllm.LLM` engine for one process; `generate` answers a list of GenRequests in one `LLM.chat` call."""

    name = "vllm"

    def __init__(self, pretrained: str, options: dict[str, Any] | None = None) -> None:
        opts = read_options(self.name, options, VLLM_OPTIONS)
        if not pretrained:
            raise AdapterConfigError("backend=vllm: no checkpoint; pass pretrained=HF_ID_OR_FOLDER.")
        try:
            import vllm
        except ImportError as exc:
            if not (isinstance(exc, ModuleNotFoundError) and exc.name == "vllm"):
                raise AdapterConfigError(f"backend=vllm: vLLM is installed but cannot be imported ({exc}).") from exc
            raise AdapterConfigError(
                "backend=vllm needs vLLM, which is not installed: run `pip install lmms-eval-medvision[vllm]` "
                "on a machine with a supported GPU, or use backend=hf or backend=openai."
            ) from exc
        self.vllm_version = str(getattr(vllm, "__version__", "0"))
        ceiling = opts["max_vllm_version"]
        if ceiling is not None and not version_at_most(self.vllm_version, ceiling):
            raise AdapterConfigError(
                f"backend=vllm: {pretrained} runs only on vLLM <= {ceiling}, but vLLM {self.vllm_version} is "
                f"installed (newer releases dropped its architecture). Use backend=hf, or backend=openai with a "
                f"server running vLLM {ceiling} (`pip install vllm=={ceiling}` in its own environment)."
            )
        self.options = opts
        self.pretrained = pretrained
        self._pil_parts = version_at_most(PIL_PARTS_MIN_VERSION, self.vllm_version)
        self._image_part = _pil_part if self._pil_parts else data_url_part(PNG_COMPRESS_LEVEL)
        self._pin_devices(opts["tensor_parallel_size"], opts["data_parallel_size"])
        self._sampling_params_cls = vllm.SamplingParams
        self.engine_kwargs: dict[str, Any] = {
            "model": pretrained,
            "tensor_parallel_size": opts["tensor_parallel_size"],
            "gpu_memory_utilization": opts["gpu_memory_utilization"],
            "dtype": opts["dtype"] or "auto",
            "trust_remote_code": opts["trust_remote_code"],
            "limit_mm_per_prompt": opts["limit_mm_per_prompt"],
            "mm_processor_kwargs": opts["mm_processor_kwargs"],
            "max_model_len": opts["max_model_len"],
            "seed": opts["seed"],
        }
        logger.info(f"backend=vllm: vLLM {self.vllm_version}, engine {self.engine_kwargs}")
        self.llm = vllm.LLM(**self.engine_kwargs)

    @staticmethod
    def _pin_devices(tensor_parallel_size: int, data_parallel_size: int) -> None:
        """Under `accelerate launch` (LOCAL_WORLD_SIZE > 1) give each process its own slice of the GPUs."""
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        world = int(os.environ.get("WORLD_SIZE", str(local_world)))
        if data_parallel_size != world:
            logger.warning(
                f"backend=vllm: data_parallel_size={data_parallel_size} but {world} process(es) run; data parallelism "
                f"is one engine per process: `accelerate launch --num_processes {data_parallel_size} -m lmms_eval ...`."
            )
        if local_world <= 1:
            return
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        visible_env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible_env:
            visible = [d.strip() for d in visible_env.split(",") if d.strip()]
        else:
            import torch

            visible = [str(i) for i in range(torch.cuda.device_count())]
        chosen = devices_for_rank(visible, local_rank, tensor_parallel_size)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
        logger.info(f"backend=vllm: process {local_rank} of {local_world} uses CUDA devices {','.join(chosen)}")

    def checkpoint_sampling_defaults(self) -> dict[str, Any]:
        """temperature/top_p/top_k/min_p/repetition_penalty from the checkpoint's generation config, via vLLM."""
        getter = getattr(self.llm, "get_default_sampling_params", None)
        if getter is None:
            return {}
        defaults = getter()
        keys = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
        return {k: getattr(defaults, k) for k in keys if getattr(defaults, k, None) is not None}

    def sampling_params(self, sampling: dict[str, Any]) -> Any:
        """One `vllm.SamplingParams` for one request (temperature 0 = greedy; `until` -> `stop`)."""
        values = read_sampling(self.name, sampling)
        kwargs: dict[str, Any] = {
            "n": 1,
            "max_tokens": values.max_tokens,
            "seed": values.seed,
            "stop": values.stop or None,
        }
        if values.temperature is None:
            # No temperature from the profile or --gen_kwargs: sample as the checkpoint's generation config says.
            kwargs.update(self.checkpoint_sampling_defaults())
        else:
            kwargs.update(temperature=values.temperature, top_p=1.0)
        if values.top_p is not None:
            kwargs["top_p"] = values.top_p
        if values.repetition_penalty is not None:
            kwargs["repetition_penalty"] = values.repetition_penalty
        if values.min_tokens is not None:
            kwargs["min_tokens"] = values.min_tokens
        return self._sampling_params_cls(**kwargs)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Results in request order; one `LLM.chat` call for all, bisected on failure down to single requests."""
        results: list[GenResult | None] = [None] * len(requests)
        params = [self.sampling_params(req.sampling) for req in requests]  # bad settings raise before any work
        batch: list[tuple[int, list[dict[str, Any]], Any]] = []
        for index, req in enumerate(requests):
            try:
                batch.append((index, to_chat_messages(req.messages, self._image_part), params[index]))
            except Exception as exc:
                results[index] = GenResult("", error=f"could not build vLLM messages: {type(exc).__name__}: {exc}")
        if batch:
            self._run(batch, results, requests)
        failed = sum(1 for r in results if r is not None and r.error)
        if failed:
            logger.warning(f"backend=vllm: {failed} of {len(requests)} request(s) failed; recorded as failures.")
        return [r if r is not None else GenResult("", error="no result") for r in results]

    def _run(
        self,
        batch: list[tuple[int, list[dict[str, Any]], Any]],
        results: list[GenResult | None],
        requests: list[GenRequest],
    ) -> None:
        try:
            outputs = self.llm.chat([conv for _, conv, _ in batch], sampling_params=[p for _, _, p in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"LLM.chat returned {len(outputs)} outputs for {len(batch)} conversations")
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if len(batch) == 1 or type(exc).__name__ == "EngineDeadError":  # a dead engine fails everything left
                keys = [requests[index].key for index, _, _ in batch]
                logger.warning(f"backend=vllm: {len(batch)} request(s) failed ({reason}): {keys[:5]}")
                for index, _, _ in batch:
                    results[index] = GenResult("", error=reason)
                return
            logger.warning(f"backend=vllm: a batch of {len(batch)} failed ({reason}); retrying in halves.")
            half = len(batch) // 2
            self._run(batch[:half], results, requests)
            self._run(batch[half:], results, requests)
            return
        for (index, _, _), output in zip(batch, outputs):
            results[index] = self._result(output)

    @staticmethod
    def _result(output: Any) -> GenResult:
        completion = output.outputs[0]
        prompt_ids = getattr(output, "prompt_token_ids", None)
        token_ids = getattr(completion, "token_ids", None)
        return GenResult(
            text=completion.text,
            truncated=completion.finish_reason == "length",
            prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
            completion_tokens=len(token_ids) if token_ids is not None else None,
        )
