"""transformers backend: processor chat template, left-padded batches, `generate` per parameter group.

One `HFBackend` holds one model on one device. Under `accelerate launch` the adapter gives each process its
own `cuda:<local_process_index>` and lmms-eval shards the requests by rank (docs/reference.md §7.1), so this backend
never shards or gathers by itself.

Families (from `config.json`, or the profile): Qwen2.5-VL, Gemma3, LLaVA-OneVision, Mllama and InternVL
`-hf` checkpoints run through `AutoProcessor` + the family's transformers class; remote-code InternVL
checkpoints (`InternVLChatModel`) run through their own `batch_chat()` with tiles cut exactly as the
registered `internvl_tiles` geometry says.

`generate` follows the backend contract: a batch that raises (e.g. CUDA out of memory) is retried in
halves down to single requests, and a request that still fails comes back as `GenResult("", error=...)`.
Only a bad setting (`AdapterConfigError`) propagates.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from ..errors import AdapterConfigError
from . import GenRequest, GenResult

# Options the adapter passes (all optional); see `HFBackend.__init__`.
HF_OPTIONS: tuple[str, ...] = (
    "family",
    "hf_class",
    "device",
    "device_map",
    "dtype",
    "gpu_dtype",
    "attn_implementation",
    "trust_remote_code",
    "processor_limits",
)
DTYPE_NAMES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("eager", "sdpa", "flash_attention_2", "flash_attention_3")
FLASH_ATTENTION_MODULES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
# model_type in config.json -> family name used by the profiles.
MODEL_TYPE_FAMILIES = {
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen2_vl": "qwen2_5_vl",
    "gemma3": "gemma3",
    "llava_onevision": "llava_onevision",
    "internvl": "internvl",
    "internvl_chat": "internvl",
    "mllama": "mllama",
}
INTERNVL_REMOTE_ARCHITECTURE = "InternVLChatModel"
# ImageNet normalisation used by InternVL's remote-code preprocessing.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generate_with_halving(
    run: Callable[[list[GenRequest]], list[GenResult]],
    requests: list[GenRequest],
    label: str,
    on_failure: Callable[[BaseException], None] | None = None,
) -> list[GenResult]:
    """`run(requests)`; on an exception retry each half, down to single requests that become failed results.

    `AdapterConfigError` (a bad setting, same for every request) propagates. `on_failure` runs after each
    failure before the retry (e.g. to empty the CUDA cache).
    """
    try:
        results = run(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"{len(results)} results for {len(requests)} requests")
        return results
    except AdapterConfigError:
        raise
    except Exception as exc:
        if on_failure is not None:
            on_failure(exc)
        reason = f"{type(exc).__name__}: {exc}"
        if len(requests) == 1:
            logger.warning(f"{label}: request {requests[0].key} failed ({reason}); recorded as a failed response.")
            return [GenResult("", error=reason)]
        half = len(requests) // 2
        logger.warning(
            f"{label}: a batch of {len(requests)} failed ({reason}); retrying at {half} + {len(requests) - half}."
        )
        return generate_with_halving(run, requests[:half], label, on_failure) + generate_with_halving(
            run, requests[half:], label, on_failure
        )


def sampling_group_key(sampling: dict[str, Any]) -> str:
    """Requests with equal keys share one `generate` call (same parameters, same stop strings, same seed)."""
    return json.dumps(sampling, sort_keys=True, default=str)


def pixel_limits_of(size: Any) -> tuple[Any, Any]:
    """(shortest_edge, longest_edge) of an image processor's `size`: a dict in transformers 4.57, a SizeDict
    with attributes in 5.x."""
    keys = ("shortest_edge", "longest_edge")
    if isinstance(size, dict):
        return tuple(size.get(k) for k in keys)  # type: ignore[return-value]
    return tuple(getattr(size, k, None) for k in keys)  # type: ignore[return-value]


def hf_generate_kwargs(sampling: dict[str, Any]) -> dict[str, Any]:
    """`GenRequest.sampling` -> `model.generate` keyword arguments (no seed; `until` -> `stop_strings`).

    `temperature == 0` (or `do_sample=False`) is greedy. Keys absent from `sampling` are left to the
    checkpoint's `generation_config` (Lingshu's paper behaviour, docs/reference.md §9 Q7), except that an explicit
    temperature also pins `repetition_penalty` to 1.0 as the paper's explicit vLLM parameters did.
    """
    out: dict[str, Any] = {}
    if sampling.get("max_new_tokens") is not None:
        out["max_new_tokens"] = int(sampling["max_new_tokens"])
    temperature = sampling.get("temperature")
    do_sample = sampling.get("do_sample")
    if do_sample is None and temperature is not None:
        do_sample = float(temperature) > 0
    if do_sample is not None:
        out["do_sample"] = bool(do_sample)
    if do_sample:
        if temperature is not None and float(temperature) > 0:
            out["temperature"] = float(temperature)
        if sampling.get("top_p") is not None:
            out["top_p"] = float(sampling["top_p"])
    for key, cast in (("num_beams", int), ("repetition_penalty", float), ("min_new_tokens", int)):
        if sampling.get(key) is not None:
            out[key] = cast(sampling[key])
    if temperature is not None:
        # An explicit temperature is the paper's explicit vLLM SamplingParams (docs/reference.md §7.3): no checkpoint
        # repetition penalty applied there, so none here either (transformers applies it even when greedy).
        out.setdefault("repetition_penalty", 1.0)
    stops = [s for s in (sampling.get("until") or []) if s]
    if stops:
        out["stop_strings"] = list(stops)
    return out


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def read_checkpoint_json(pretrained: str, filename: str) -> dict[str, Any] | None:
    """A JSON file of a local checkpoint folder or of the local hub cache; None when not readable offline."""
    folder = Path(pretrained).expanduser()
    path: Path | None = folder / filename if folder.is_dir() else None
    if path is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(pretrained, filename)
            path = Path(cached) if isinstance(cached, str) else None
        except Exception:  # an id that is not a repo id, or no hub library: nothing readable
            path = None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def checkpoint_config(pretrained: str) -> dict[str, Any]:
    """`config.json` of a checkpoint: local folder or hub cache, else downloaded (as the weights will be); {} if
    not reachable."""
    config = read_checkpoint_json(pretrained, "config.json")
    if config is not None:
        return config
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(pretrained, "config.json")).read_text(encoding="utf-8"))
    except Exception:  # offline, gated or not a repo id: let from_pretrained report it
        return {}


def read_image_processor_config(pretrained: str) -> dict[str, Any] | None:
    """The image-processor settings of a checkpoint (`preprocessor_config.json`, or transformers 5's
    `processor_config.json` → `image_processor`), read offline; None when not available."""
    flat = read_checkpoint_json(pretrained, "preprocessor_config.json")
    if flat is not None:
        return flat
    nested = read_checkpoint_json(pretrained, "processor_config.json")
    sub = nested.get("image_processor") if nested else None
    return sub if isinstance(sub, dict) else None


def internvl_tiles(image: Any, cols: int, rows: int, image_size: int) -> list[Any]:
    """Cut an image into cols x rows tiles of image_size (row-major) plus a thumbnail when there are several."""
    from PIL import Image

    resized = image.convert("RGB").resize((image_size * cols, image_size * rows), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(cols)
    ]
    if len(tiles) > 1:
        tiles.append(image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC))
    return tiles


class HFBackend:
    """A transformers image-text-to-text model and its processor on one device."""

    name = "hf"

    def __init__(self, pretrained: str, options: dict[str, Any] | None = None, *, model: Any = None) -> None:
        """Load processor and model; `model` may be given already built (e.g. random weights for a benchmark),
        then only the processor is read from `pretrained`. Options (all optional):

        * `family`: profile family (`qwen2_5_vl`, `gemma3`, `llava_onevision`, `internvl`, `mllama`);
          default from `config.json`'s `model_type`.
        * `hf_class`: transformers class name (e.g. `Qwen2_5_VLForConditionalGeneration`); default
          `AutoModelForImageTextToText`.
        * `device` (default `cuda` when available, else `cpu`), `device_map` (e.g. `auto` to split a large
          model over GPUs; then `device` only places the inputs).
        * `dtype`: `auto|bfloat16|float16|float32`; default `gpu_dtype` on a GPU and float32 on the CPU.
        * `attn_implementation`: default `sdpa` on a GPU and `eager` on the CPU; flash-attention only when
          asked for and installed.
        * `trust_remote_code` (bool), `processor_limits` (dict: Qwen `min_pixels`/`max_pixels`, InternVL
          `max_num`, `image_size`).

        Raises:
            AdapterConfigError: an unknown option or value, flash-attention asked for but not installed.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(HF_OPTIONS))
        if unknown:
            raise AdapterConfigError(f"backend=hf: unknown option(s) {unknown}; valid: {', '.join(HF_OPTIONS)}.")
        import torch

        self.torch = torch
        self.pretrained = pretrained
        self.device = str(options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        on_gpu = not self.device.startswith("cpu")
        default_dtype = (options.get("gpu_dtype") or "bfloat16") if on_gpu else "float32"
        dtype_name = options.get("dtype") or default_dtype
        if dtype_name not in DTYPE_NAMES:
            raise AdapterConfigError(f"backend=hf: dtype={dtype_name!r}; choose one of {', '.join(DTYPE_NAMES)}.")
        attn = options.get("attn_implementation") or ("sdpa" if on_gpu else "eager")
        check_attn_implementation(attn)
        self.dtype_name, self.attn_implementation = dtype_name, attn
        self.trust_remote_code = bool(options.get("trust_remote_code", False))
        self.limits = dict(options.get("processor_limits") or {})
        config = checkpoint_config(pretrained)
        self.family = options.get("family") or MODEL_TYPE_FAMILIES.get(str(config.get("model_type")), "auto")
        self.remote_internvl = INTERNVL_REMOTE_ARCHITECTURE in (config.get("architectures") or [])
        # Per request key, the exact text the chat template produced; kept only when `record_prompts` is set
        # (the adapter's `dump_requests`), which pops them.
        self.record_prompts = False
        self.rendered_prompts: dict[Any, str] = {}
        self.model_dtype = None if dtype_name == "auto" else getattr(torch, dtype_name)
        load_kwargs: dict[str, Any] = {
            "dtype": "auto" if dtype_name == "auto" else self.model_dtype,
            "trust_remote_code": self.trust_remote_code,
        }
        device_map = options.get("device_map")
        if device_map:
            load_kwargs["device_map"] = device_map
        if self.remote_internvl:
            self._load_internvl_remote(load_kwargs)
        else:
            self._load_processor_model(options.get("hf_class"), load_kwargs, model)
        if not device_map:
            self.model.to(self.device)
        # With a device_map the inputs go where the first layers are.
        self.input_device = str(self.model.device) if device_map else self.device
        self.model.eval()
        logger.info(
            f"backend=hf: {pretrained} ({type(self.model).__name__}, family {self.family}) on {self.device}, "
            f"dtype {dtype_name}, attention {attn}"
        )

    # ------------------------------------------------------------------------------------------ loading
    def _load_processor_model(self, hf_class: str | None, load_kwargs: dict[str, Any], model: Any = None) -> None:
        import transformers

        processor_kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.family == "qwen2_5_vl":
            # Never rely on a library default (docs/reference.md §7.2): pass the limits the stated geometry assumes, in
            # both spellings, since a checkpoint's own `min_pixels`/`max_pixels` would otherwise override `size`.
            low, high = int(self.limits["min_pixels"]), int(self.limits["max_pixels"])
            processor_kwargs.update(size={"shortest_edge": low, "longest_edge": high}, min_pixels=low, max_pixels=high)
        self.processor = transformers.AutoProcessor.from_pretrained(self.pretrained, **processor_kwargs)
        if self.family == "qwen2_5_vl":
            size = self.processor.image_processor.size
            applied = pixel_limits_of(size)
            if applied != (low, high):
                raise RuntimeError(
                    f"backend=hf: the processor of {self.pretrained} kept pixel limits {applied} instead of "
                    f"{(low, high)}; the stated geometry would be wrong."
                )
        # Gemma3 geometry is a plain resize (docs/reference.md §3.6, fixed(896)): keep pan-and-scan off whatever the
        # config says.
        self.call_kwargs = {"do_pan_and_scan": False} if self.family == "gemma3" else {}
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        if model is not None:
            self.model = model
            return
        model_cls = getattr(transformers, hf_class, None) if hf_class else None
        if model_cls is None:
            model_cls = transformers.AutoModelForImageTextToText
        self.model = model_cls.from_pretrained(
            self.pretrained, attn_implementation=self.attn_implementation, **load_kwargs
        )

    def _load_internvl_remote(self, load_kwargs: dict[str, Any]) -> None:
        import transformers

        if not self.trust_remote_code:
            raise AdapterConfigError(
                f"backend=hf: {self.pretrained} is a remote-code InternVL checkpoint; add trust_remote_code=true."
            )
        self.processor = None
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.pretrained, trust_remote_code=True, use_fast=False
        )
        self.model = transformers.AutoModel.from_pretrained(self.pretrained, **load_kwargs)

    # --------------------------------------------------------------------------------------- generation
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Results in request order; requests with identical sampling share one left-padded batch."""
        groups: dict[str, list[int]] = {}
        for index, req in enumerate(requests):
            groups.setdefault(sampling_group_key(req.sampling), []).append(index)
        results: list[GenResult | None] = [None] * len(requests)
        for indices in groups.values():
            batch = [requests[i] for i in indices]
            for index, result in zip(
                indices, generate_with_halving(self.generate_batch, batch, "backend=hf", self._free)
            ):
                results[index] = result
        return [r if r is not None else GenResult("", error="no result") for r in results]

    def _free(self, exc: BaseException) -> None:
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()

    def generate_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        """One `generate` call for requests with identical sampling; raises on any failure."""
        if self.remote_internvl:
            return self._generate_internvl_remote(requests)
        sampling = requests[0].sampling
        texts: list[str] = []
        images: list[list[Any]] = []
        for req in requests:
            conversation, request_images = hf_conversation(req.messages)
            text = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            if self.record_prompts:
                self.rendered_prompts[req.key] = text
            texts.append(text)
            images.append(request_images)
        bos = self.tokenizer.bos_token
        add_special_tokens = not (bos and all(t.startswith(bos) for t in texts))
        inputs = self.processor(
            text=texts,
            images=images if any(images) else None,
            padding=True,
            return_tensors="pt",
            add_special_tokens=add_special_tokens,
            **self.call_kwargs,
        )
        inputs = inputs.to(self.input_device, dtype=self.model.dtype)
        kwargs = hf_generate_kwargs(sampling)
        if "stop_strings" in kwargs:
            kwargs["tokenizer"] = self.tokenizer
        self._seed(sampling)
        with self.torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, prompt_len:].tolist()
        return [
            self._result(ids, sampling, kwargs.get("max_new_tokens"), int(n))
            for ids, n in zip(new_tokens, prompt_tokens)
        ]

    def _seed(self, sampling: dict[str, Any]) -> None:
        if sampling.get("seed") is not None:
            self.torch.manual_seed(int(sampling["seed"]))

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    def _result(
        self, ids: list[int], sampling: dict[str, Any], max_new_tokens: int | None, prompt_tokens: int
    ) -> GenResult:
        eos = self._eos_ids()
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        finished = end is not None
        if finished:
            generated = ids[:end]
            completion = end + 1
        else:
            pad = self.tokenizer.pad_token_id
            generated = list(ids)
            while generated and generated[-1] == pad:
                generated.pop()
            completion = len(generated)
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, list(sampling.get("until") or []))
        truncated = not finished and not stopped and max_new_tokens is not None and len(ids) >= max_new_tokens
        return GenResult(text, truncated=truncated, prompt_tokens=prompt_tokens, completion_tokens=completion)

    def _generate_internvl_remote(self, requests: list[GenRequest]) -> list[GenResult]:
        """Remote-code InternVL: tiles per the `internvl_tiles` rule, then the checkpoint's `batch_chat()`."""
        import numpy as np

        from medvision_tasks.geometry import internvl_tile_grid

        image_size = int(self.limits.get("image_size", 448))
        max_num = int(self.limits.get("max_num", 12))
        sampling = requests[0].sampling
        pixel_batches, counts, questions = [], [], []
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_STD, dtype=np.float32)
        for req in requests:
            conversation, request_images = hf_conversation(req.messages)
            if len(request_images) != 1:
                raise ValueError(f"InternVL remote path takes one image per request, got {len(request_images)}")
            image = request_images[0]
            cols, rows = internvl_tile_grid(image.height, image.width, image_size, max_num, True)
            tiles = internvl_tiles(image, cols, rows, image_size)
            arrays = [(np.asarray(t, dtype=np.float32) / 255.0 - mean) / std for t in tiles]
            pixel_batches.append(self.torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy()))
            counts.append(len(tiles))
            # chat() puts "<image>\n" before a question without one: the image precedes the text
            # (docs/reference.md §9 Q9).
            question = "\n".join(
                p["text"] for m in conversation if m["role"] == "user" for p in m["content"] if p["type"] == "text"
            )
            questions.append(question)
            if self.record_prompts:
                self.rendered_prompts[req.key] = f"<image>\n{question}"
        pixel_values = self.torch.cat(pixel_batches).to(self.input_device, dtype=self.model.dtype)
        config = hf_generate_kwargs(sampling)
        config.pop("stop_strings", None)
        self._seed(sampling)
        with self.torch.inference_mode():
            answers = self.model.batch_chat(
                self.tokenizer, pixel_values, num_patches_list=counts, questions=questions, generation_config=config
            )
        results = []
        for answer in answers:
            text, stopped = cut_at_stop(str(answer), list(sampling.get("until") or []))
            n = len(self.tokenizer(str(answer), add_special_tokens=False)["input_ids"])
            limit = config.get("max_new_tokens")
            results.append(GenResult(text, truncated=bool(limit) and not stopped and n >= limit, completion_tokens=n))
        return results


def hf_conversation(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Neutral messages -> a fresh HF chat conversation (content lists copied) and its images in order."""
    conversation: list[dict[str, Any]] = []
    images: list[Any] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            if part["type"] == "image":
                images.append(part["image"])
                parts.append({"type": "image", "image": part["image"]})
            elif part["type"] == "text":
                parts.append({"type": "text", "text": part["text"]})
            else:
                raise ValueError(f"unknown content part type {part['type']!r}")
        conversation.append({"role": message["role"], "content": parts})
    return conversation, images


def check_attn_implementation(attn: str) -> None:
    """Raise AdapterConfigError for an unknown attention implementation or a flash-attention not installed."""
    if attn not in ATTN_IMPLEMENTATIONS:
        raise AdapterConfigError(
            f"backend=hf: attn_implementation={attn!r}; choose one of {', '.join(ATTN_IMPLEMENTATIONS)}."
        )
    module = FLASH_ATTENTION_MODULES.get(attn)
    if module and importlib.util.find_spec(module) is None:
        raise AdapterConfigError(
            f"backend=hf: attn_implementation={attn} needs the {module!r} package, which is not installed; "
            "install it or use attn_implementation=sdpa."
        )
