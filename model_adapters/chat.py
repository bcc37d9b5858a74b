"""Profile-driven adapters for the chat VLMs of docs/reference.md §7.3: one request loop for every backend.

`MedVisionChatModel` reads its `profile` (profiles.py), validates `--model_args` before any weights load,
registers identity, geometry and task defaults with `medvision_tasks.settings`, builds each request's
messages once (system prompt, image before or after the text) and its sampling parameters per request,
and hands batches of `batch_size` requests to a backend.

Model arguments (`--model_args k=v,...`):

* every backend: `pretrained`, `backend` (`hf` | `vllm` | `openai`), `batch_size`, `device`,
  `max_batch_size`, `geometry` (declare the processor geometry, e.g. for a server with other limits),
  `greedy` (force greedy decoding), `seed` (per-request sampling seed), `dump_requests` (debug: append one
  JSON line per request with messages, sampling, the rendered prompt and the answer), plus the profile's
  processor limits (`min_pixels`/`max_pixels` for the Qwen family, `max_num` for InternVL3);
* `hf`: `dtype`, `device_map`, `attn_implementation`, `trust_remote_code`;
* `vllm`: `dtype`, `tensor_parallel_size`, `data_parallel_size`, `gpu_memory_utilization`, `max_model_len`,
  `limit_mm_per_prompt`, `trust_remote_code`;
* `openai`: `base_url`, `api_key_env`, `served_name`, `num_concurrent`, `max_retries`, `timeout`,
  `png_compress_level`.

Backends are imported only when selected, by module path: `medvision_adapters.backends.hf.HFBackend`,
`medvision_adapters.backends.vllm.VLLMBackend`, `medvision_adapters.backends.openai.OpenAIBackend`, each
called as `Backend(pretrained, options)`. The `options` dict each receives:

* hf: `family`, `hf_class`, `device`, `device_map`, `dtype`, `gpu_dtype` (profile dtype),
  `attn_implementation`, `trust_remote_code`, `processor_limits` (see `HFBackend.__init__`).
* vllm: `dtype` (user's, else the profile's), `tensor_parallel_size`, `data_parallel_size`,
  `gpu_memory_utilization`, `max_model_len`, `limit_mm_per_prompt` (user's, else `{"image": 1}`),
  `trust_remote_code`, `mm_processor_kwargs` (Qwen family: `{"min_pixels", "max_pixels"}`; InternVL3:
  `{"max_dynamic_patch": max_num}`), `seed` (when given), `max_vllm_version` (the profile's ceiling,
  e.g. "0.10.2" for Llama 3.2 Vision). Keys the user did not give and the profile does not set are left
  out, so the backend's own defaults apply.
* openai: `served_name` (user's, else `pretrained`) and whichever of `base_url`, `api_key_env` (backend
  default `OPENAI_API_KEY`), `num_concurrent`, `max_retries`, `timeout`, `png_compress_level` the user gave.

Failures: a batch that raises is retried in halves down to single requests; a request that still fails,
or answers empty text, is recorded as a failed response with its reason (`generation_error` in the
record) and the run goes on. An output that hits `max_new_tokens` is logged and recorded as truncated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from medvision_metrics.options import did_you_mean

from medvision_tasks import settings as mv_settings
from medvision_tasks.errors import SettingsError
from medvision_tasks.geometry import parse_geometry
from medvision_tasks.hooks import note_generation

from .backends import GenRequest, GenResult
from .backends.hf import (
    INTERNVL_REMOTE_ARCHITECTURE,
    check_attn_implementation,
    generate_with_halving,
    read_checkpoint_json,
    read_image_processor_config,
)
from .base import COMMON_ARGS, HOST_FLAG_ARGS, MedVisionModel, check_model_args, host_flag_message
from .errors import AdapterConfigError
from .journal import Entry, image_digest
from .profiles import BACKENDS, DTYPES, GENERATION_KEYS, PROFILES, ModelProfile, format_geometry
from .request_loop import Prepared
from .sampling import build_sampling, to_bool

ADAPTER_ARGS: tuple[str, ...] = ("geometry", "greedy", "seed", "dump_requests")
BACKEND_ARGS: dict[str, tuple[str, ...]] = {
    "hf": ("dtype", "device_map", "attn_implementation", "trust_remote_code"),
    "vllm": (
        "dtype",
        "tensor_parallel_size",
        "data_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "limit_mm_per_prompt",
        "trust_remote_code",
    ),
    "openai": (
        "base_url",
        "api_key_env",
        "served_name",
        "num_concurrent",
        "max_retries",
        "timeout",
        "png_compress_level",
    ),
}
BACKEND_CLASSES: dict[str, str] = {
    "hf": "medvision_adapters.backends.hf.HFBackend",
    "vllm": "medvision_adapters.backends.vllm.VLLMBackend",
    "openai": "medvision_adapters.backends.openai.OpenAIBackend",
}
# gen_kwargs keys a request may set; each overrides the profile default of the same name.
SAMPLING_KEYS: tuple[str, ...] = GENERATION_KEYS + ("until", "seed")
# Requests per vllm/openai backend call (one LLM.chat call schedules them all; ~0.75 MB per 512² image).
REMOTE_CHUNK = 512


# ------------------------------------------------------------------------------------------ validation
def to_positive_int(where: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise AdapterConfigError(f"{where}={value!r} is not an integer.") from None
    if number < 1:
        raise AdapterConfigError(f"{where}={value!r} must be at least 1.")
    return number


def looks_like_local_path(pretrained: str) -> bool:
    """True for folder-like strings (absolute, relative with ./ or ../, ~, or more than one '/'); hub ids are
    `name` or `org/name`."""
    return (
        pretrained.startswith(("/", "./", "../", "~", ".\\"))
        or "\\" in pretrained
        or pretrained.count("/") > 1
        or Path(pretrained).expanduser().exists()
    )


def resolve_backend(profile: ModelProfile, backend: Any) -> str:
    """The backend name, checked against the profile (closest match for a typo)."""
    name = str(backend or "hf").strip().lower()
    if name in profile.backends:
        return name
    if name in BACKENDS:
        raise AdapterConfigError(
            f"--model {profile.name}: backend={name} is not available for this model; "
            f"choose one of: {', '.join(profile.backends)}."
        )
    hint = did_you_mean(name, profile.backends)
    raise AdapterConfigError(
        f"--model {profile.name}: unknown backend {name!r}.{hint} Choose one of: {', '.join(profile.backends)}."
    )


def check_backend_args(profile: ModelProfile, backend: str, given: dict[str, Any]) -> None:
    """Unknown keys raise, naming the backend a key belongs to when it is valid elsewhere."""
    valid = COMMON_ARGS + ADAPTER_ARGS + profile.processor_args + BACKEND_ARGS[backend]
    for key in given:
        if key in valid:
            continue
        owners = [b for b, keys in BACKEND_ARGS.items() if key in keys and b in profile.backends]
        if owners:
            raise AdapterConfigError(
                f"--model {profile.name}: --model_args key {key!r} applies to backend={'/'.join(owners)}, not "
                f"backend={backend}. Valid keys for backend={backend}: {', '.join(sorted(valid))}."
            )
    check_model_args(f"{profile.name} (backend={backend})", given, valid)


def needs_remote_code(profile: ModelProfile, pretrained: str) -> bool:
    """Whether loading `pretrained` runs checkpoint code: the profile says so, unless a readable config shows
    a native transformers checkpoint (e.g. InternVL `-hf` conversions)."""
    if not profile.trust_remote_code:
        return False
    config = read_checkpoint_json(pretrained, "config.json")
    if config is None:
        return True
    return "auto_map" in config or INTERNVL_REMOTE_ARCHITECTURE in (config.get("architectures") or [])


# -------------------------------------------------------------------------------------------- geometry
def checkpoint_geometry_params(profile: ModelProfile, pretrained: str) -> dict[str, Any]:
    """Geometry parameters read from the checkpoint's processor config, when it is readable offline."""
    found: dict[str, Any] = {}
    config = read_image_processor_config(pretrained) or {}
    size = config.get("size") if isinstance(config.get("size"), dict) else {}
    square = size.get("height") if size.get("height") and size.get("height") == size.get("width") else None
    if profile.family == "gemma3" and square:
        found["size"] = int(square)
    elif profile.family == "llava_onevision" and config.get("image_grid_pinpoints"):
        found["grid_pinpoints"] = [[int(h), int(w)] for h, w in config["image_grid_pinpoints"]]
    elif profile.family == "mllama":
        if square:
            found["tile_size"] = int(square)
        if config.get("max_image_tiles"):
            found["max_image_tiles"] = int(config["max_image_tiles"])
    elif profile.family == "internvl":
        model_config = read_checkpoint_json(pretrained, "config.json") or {}
        vision = model_config.get("vision_config") if isinstance(model_config.get("vision_config"), dict) else {}
        image_size = model_config.get("force_image_size") or vision.get("image_size")
        if isinstance(image_size, (list, tuple)):
            image_size = image_size[0]
        if image_size:
            found["image_size"] = int(image_size)
    return found


def resolve_geometry(profile: ModelProfile, pretrained: str, limits: dict[str, Any]) -> str:
    """The geometry rule string the processor applies: profile defaults < checkpoint config < user limits."""
    params = dict(profile.geometry_params)
    params.update(checkpoint_geometry_params(profile, pretrained))
    params.update(limits)
    return format_geometry(profile.geometry_rule, params)


@dataclass(frozen=True)
class ResolvedArgs:
    """Checked model arguments; `limits` holds every processor limit of the profile (defaults filled in)."""

    backend: str
    pretrained: str
    batch_size: int
    limits: dict[str, Any]
    geometry: str | None
    greedy: bool
    seed: int | None


def validate_arguments(
    profile: ModelProfile,
    pretrained: str | None,
    backend: Any,
    batch_size: Any,
    max_batch_size: Any,
    kwargs: dict[str, Any],
) -> ResolvedArgs:
    """Check every model argument without loading anything (docs/reference.md §7.1, §7.7 bug 1).

    Raises:
        AdapterConfigError: unknown key or backend, bad value, missing local `pretrained` folder,
            `trust_remote_code` needed but not granted, flash-attention asked for but not installed.
    """
    name = profile.name
    backend = resolve_backend(profile, backend)
    check_backend_args(profile, backend, kwargs)
    batch = to_positive_int(f"--model {name}: batch_size", batch_size or 1)
    if max_batch_size is not None:
        to_positive_int(f"--model {name}: max_batch_size", max_batch_size)
    pretrained = str(pretrained or profile.default_pretrained).strip()
    if backend != "openai" and looks_like_local_path(pretrained) and not Path(pretrained).expanduser().is_dir():
        raise AdapterConfigError(
            f"--model {name}: pretrained={pretrained} is not an existing folder; give a checkpoint folder or a "
            f"hub id such as {profile.default_pretrained}."
        )
    if backend != "openai" and needs_remote_code(profile, pretrained):
        if not to_bool(f"--model {name}: trust_remote_code", kwargs.get("trust_remote_code", False)):
            raise AdapterConfigError(
                f"--model {name}: {pretrained} runs code from its checkpoint; add trust_remote_code=true to "
                "--model_args if you trust it."
            )
    limits = {
        key: to_positive_int(f"--model {name}: {key}", kwargs[key]) if key in kwargs else profile.geometry_params[key]
        for key in profile.processor_args
    }
    if limits.get("min_pixels", 0) > limits.get("max_pixels", limits.get("min_pixels", 0)):
        raise AdapterConfigError(f"--model {name}: min_pixels={limits['min_pixels']} exceeds max_pixels.")
    if kwargs.get("dtype") is not None and str(kwargs["dtype"]) not in DTYPES:
        raise AdapterConfigError(f"--model {name}: dtype={kwargs['dtype']!r}; choose one of {', '.join(DTYPES)}.")
    if backend == "hf" and kwargs.get("attn_implementation"):
        check_attn_implementation(str(kwargs["attn_implementation"]))
    geometry = kwargs.get("geometry")
    if geometry is not None:
        try:
            parse_geometry(str(geometry))
        except SettingsError as exc:
            raise AdapterConfigError(f"--model {name}: geometry: {exc}") from None
    seed = kwargs.get("seed")
    if seed is not None:
        try:
            seed = int(str(seed).strip())
        except ValueError:
            raise AdapterConfigError(f"--model {name}: seed={kwargs['seed']!r} is not an integer.") from None
    return ResolvedArgs(
        backend=backend,
        pretrained=pretrained,
        batch_size=batch,
        limits=limits,
        geometry=None if geometry is None else str(geometry),
        greedy=to_bool(f"--model {name}: greedy", kwargs["greedy"]) if "greedy" in kwargs else False,
        seed=seed,
    )


# ------------------------------------------------------------------------------------------- the model
class MedVisionChatModel(MedVisionModel):
    """lmms-eval simple model for one profile; subclasses only set `profile`."""

    profile: ClassVar[ModelProfile]

    @classmethod
    def check_model_arg_keys(cls, given: dict[str, str]) -> None:
        """Backend and key checks of `validate_arguments`, without constructing anything."""
        for key in HOST_FLAG_ARGS:
            if key in given:
                raise AdapterConfigError(host_flag_message(cls.profile.name, key))
        check_backend_args(cls.profile, resolve_backend(cls.profile, given.get("backend")), given)

    def __init__(
        self,
        pretrained: str | None = None,
        backend: str = "hf",
        batch_size: int | str = 1,
        device: str | None = None,
        max_batch_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        profile = self.profile
        name = profile.name
        args = validate_arguments(profile, pretrained, backend, batch_size, max_batch_size, kwargs)
        backend, pretrained, geometry = args.backend, args.pretrained, args.geometry

        super().__init__(pretrained=pretrained, backend=backend, batch_size=args.batch_size, device=device)
        self.adapter_name = name
        self.model_kwargs = dict(kwargs)
        self.seed = args.seed
        self.dump_path = Path(str(kwargs["dump_requests"])).expanduser() if kwargs.get("dump_requests") else None
        self.generation_defaults = dict(profile.generation)
        if args.greedy:
            self.generation_defaults.update(do_sample=False, temperature=0.0)
        self.task_defaults = dict(profile.task_defaults)
        self.geometry = str(geometry) if geometry is not None else resolve_geometry(profile, pretrained, args.limits)
        if backend == "openai" and geometry is None:
            logger.warning(
                f"--model {name} (backend=openai): prompts state pixel sizes for {self.geometry}; the server must "
                "apply these processor limits, or pass geometry=... to declare the ones it uses."
            )
        self._ignored_gen_keys: set[str] = set()
        self._local_rank = self._setup_data_parallel(backend)
        self.register(self.generation_record(args.limits))
        self.backend_impl = self._make_backend(backend, pretrained, device, args.limits, kwargs)
        if self.dump_path is not None and hasattr(self.backend_impl, "record_prompts"):
            self.backend_impl.record_prompts = True

    # ---------------------------------------------------------------------------------------- setup
    def generation_record(self, limits: dict[str, Any]) -> dict[str, Any]:
        """What the records carry under `model.generation`: defaults, message layout, limits, model key."""
        return {
            "defaults": dict(self.generation_defaults),
            "system_prompt": self.profile.system_prompt,
            "image_position": self.profile.image_position,
            "processor_limits": dict(limits),
            "model_key": self.profile.model_key(self.pretrained),
            "seed": self.seed,
        }

    def _setup_data_parallel(self, backend: str) -> int:
        """Rank and world size from the Accelerator under `accelerate launch` (hf); returns the local index."""
        if backend != "hf" or mv_settings.launch_ranks()[0] <= 1:
            return 0
        from accelerate import Accelerator

        self.accelerator = Accelerator()
        self._rank = self.accelerator.process_index
        self._world_size = self.accelerator.num_processes
        return int(self.accelerator.local_process_index)

    def backend_options(
        self, backend: str, device: str | None, limits: dict[str, Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The `options` dict of the module docstring for one backend."""
        profile = self.profile
        if backend == "hf":
            if self._world_size > 1 and (device is None or str(device).startswith("cuda")):
                device = f"cuda:{self._local_rank}"
            processor_limits = dict(limits)
            if profile.family == "internvl":
                processor_limits.update(checkpoint_geometry_params(profile, str(self.pretrained)))
            return {
                "family": profile.family,
                "hf_class": profile.hf_class,
                "device": device,
                "device_map": kwargs.get("device_map"),
                "dtype": kwargs.get("dtype"),
                "gpu_dtype": profile.dtype,
                "attn_implementation": kwargs.get("attn_implementation") or profile.attn_implementation,
                "trust_remote_code": to_bool("trust_remote_code", kwargs.get("trust_remote_code", False)),
                "processor_limits": processor_limits,
            }
        if backend == "vllm":
            options = {key: kwargs[key] for key in BACKEND_ARGS["vllm"] if key in kwargs}
            options.setdefault("dtype", profile.dtype)
            if profile.family == "qwen2_5_vl":
                options["mm_processor_kwargs"] = {
                    "min_pixels": limits["min_pixels"],
                    "max_pixels": limits["max_pixels"],
                }
            elif profile.family == "internvl":
                options["mm_processor_kwargs"] = {"max_dynamic_patch": limits["max_num"]}
            if self.seed is not None:
                options["seed"] = self.seed
            if profile.max_vllm_version:
                options["max_vllm_version"] = profile.max_vllm_version
            return options
        options = {key: kwargs[key] for key in BACKEND_ARGS["openai"] if key in kwargs}
        options.setdefault("served_name", self.pretrained)
        return options

    def _make_backend(
        self, backend: str, pretrained: str, device: str | None, limits: dict[str, Any], kwargs: dict[str, Any]
    ) -> Any:
        import importlib

        module_name, _, class_name = BACKEND_CLASSES[backend].rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(pretrained, self.backend_options(backend, device, limits, kwargs))

    # ------------------------------------------------------------------------------------- requests
    def build_messages(self, prompt: str, images: list[Any]) -> list[dict[str, Any]]:
        """`[system?, user[text, image...] or user[image..., text]]` as the profile prescribes."""
        text = [{"type": "text", "text": prompt}]
        pictures = [{"type": "image", "image": image} for image in images]
        user = pictures + text if self.profile.image_position == "before_text" else text + pictures
        messages: list[dict[str, Any]] = []
        if self.profile.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.profile.system_prompt}]})
        messages.append({"role": "user", "content": user})
        return messages

    def build_sampling(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Profile defaults overridden by the request's gen_kwargs (sampling.build_sampling, rule "backend");
        `until` always a list of strings; unknown keys are ignored with one warning each."""
        built = build_sampling(self.generation_defaults, gen_kwargs, SAMPLING_KEYS, rule="backend")
        for key in built.ignored:
            if key not in self._ignored_gen_keys:
                self._ignored_gen_keys.add(key)
                logger.warning(
                    f"{self.adapter_name}: ignoring generation setting {key}={gen_kwargs[key]!r}; "
                    f"known: {', '.join(SAMPLING_KEYS)}."
                )
        sampling = built.settings
        if self.seed is not None:
            sampling.setdefault("seed", self.seed)
        return sampling

    @property
    def request_window(self) -> int:
        """Requests prepared (images decoded) per window: hf `batch_size`; vllm/openai at least REMOTE_CHUNK."""
        return self.batch_size_per_gpu if self.backend == "hf" else max(self.batch_size_per_gpu, REMOTE_CHUNK)

    def generate_until(self, requests: list[Any]) -> list[Any]:
        """Answers in request order through `request_loop.run_requests`. hf: `batch_size` requests per `generate`;
        vllm/openai: windows of at least REMOTE_CHUNK requests per backend call (vLLM schedules them itself, the
        openai backend runs them `num_concurrent` at a time and reports each as it completes), bounded so that
        the decoded images of one window stay in memory."""
        from .request_loop import run_requests

        self._counts = {"failed": 0, "empty": 0, "truncated": 0}
        answers = run_requests(self, requests)
        counts = self._counts
        if any(counts.values()):
            logger.warning(
                f"{self.adapter_name}: {counts['failed']} failed, {counts['empty']} empty and {counts['truncated']} "
                f"truncated response(s) of {len(requests)}; see generation_error / truncated in the records."
            )
        return answers

    def prepare_request(self, index: int, request: Any) -> Prepared:
        prompt, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        row = int(doc.get("mv_row", doc_id))
        sampling = self.build_sampling(dict(gen_kwargs or {}))  # a bad setting stops the run
        visuals = doc_to_visual(doc)
        messages = self.build_messages(prompt, list(visuals or []))
        identity = {"messages": identity_messages(messages), "sampling": sampling} if self.journal_folder else None
        return Prepared(
            index, task, doc_id, row, identity, GenRequest(key=(task, row), messages=messages, sampling=sampling)
        )

    def execute(self, batch: list[Prepared], done: Any) -> None:
        def entry(result: GenResult) -> Entry:
            return Entry(result.text, result.error, result.truncated, result.prompt_tokens, result.completion_tokens)

        gen_requests = [p.payload for p in batch]
        if getattr(self.backend_impl, "reports_each_result", False):
            self.backend_impl.generate(gen_requests, on_result=lambda i, result: done(i, entry(result)))
            return
        results = generate_with_halving(self.backend_impl.generate, gen_requests, self.adapter_name)
        for position, result in enumerate(results):
            done(position, entry(result))

    def finish_entry(self, prepared: Prepared, entry: Entry, fresh: bool) -> Any:
        from lmms_eval.api.instance import GenerationResult, TokenCounts

        result = GenResult(entry.text, entry.truncated, entry.error, entry.prompt_tokens, entry.completion_tokens)
        text = self._finish(prepared.payload, result, self._counts, dump=fresh)
        return GenerationResult(
            text=text,
            token_counts=TokenCounts(input_tokens=result.prompt_tokens, output_tokens=result.completion_tokens),
        )

    def failed_answer(self, index: int, request: Any, error: str) -> Any:
        from lmms_eval.api.instance import GenerationResult

        _, _, _, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        self._counts["failed"] += 1
        note_generation(task, int(doc.get("mv_row", doc_id)), error=error)
        return GenerationResult(text="")  # unreadable samples stay ""

    def _finish(self, request: GenRequest, result: GenResult, counts: dict[str, int], dump: bool = True) -> str:
        task, row = request.key
        error = result.error
        if error:
            counts["failed"] += 1
        elif not result.text.strip():
            counts["empty"] += 1
            error = "empty response"
        if result.truncated:
            counts["truncated"] += 1
            logger.warning(
                f"{self.adapter_name}: {task} row {row} hit max_new_tokens={request.sampling.get('max_new_tokens')}; "
                "recorded truncated=true."
            )
        if error or result.truncated:
            note_generation(task, row, truncated=bool(result.truncated), error=error)
        if self.dump_path is not None and dump:
            self._dump(request, result, error)
        return "" if result.error else result.text

    def _dump(self, request: GenRequest, result: GenResult, error: str | None) -> None:
        """Append what the backend received and returned (images as their size) to `dump_requests`."""
        path = self.dump_path if self.world_size == 1 else Path(f"{self.dump_path}.rank{self.rank}")
        rendered = getattr(self.backend_impl, "rendered_prompts", {}).pop(request.key, None)
        line = {
            "key": list(request.key),
            "adapter": self.adapter_name,
            "backend": self.backend,
            "pretrained": self.pretrained,
            "messages": describe_messages(request.messages),
            "sampling": request.sampling,
            "rendered_prompt": rendered,
            "response": result.text,
            "truncated": result.truncated,
            "error": error,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")


def identity_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each image replaced by the SHA-256 of its pixel bytes, mode and size (journal key)."""
    out = []
    for message in messages:
        parts = [
            {"type": "image", **image_digest(part["image"])} if part["type"] == "image" else dict(part)
            for part in message["content"]
        ]
        out.append({"role": message["role"], "content": parts})
    return out


def describe_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each image replaced by `{"type": "image", "size_wh": [w, h], "mode": ...}` (JSON-safe)."""
    out = []
    for message in messages:
        parts = []
        for part in message["content"]:
            if part["type"] == "image":
                image = part["image"]
                parts.append({"type": "image", "size_wh": [image.width, image.height], "mode": image.mode})
            else:
                parts.append(dict(part))
        out.append({"role": message["role"], "content": parts})
    return out


# ------------------------------------------------------------------------------- one class per --model
def _adapter_class(profile: ModelProfile) -> type[MedVisionChatModel]:
    """The lmms-eval model class of one profile: `MedVisionChatModel` bound to that profile."""
    doc = f"`--model {profile.name}`: {profile.paper_name} (default `pretrained={profile.default_pretrained}`)."
    namespace = {"profile": profile, "__module__": __name__, "__qualname__": profile.adapter_class, "__doc__": doc}
    return type(profile.adapter_class, (MedVisionChatModel,), namespace)


# One class per chat profile (MedVisionV0, Lingshu, MedGemma, Qwen2_5_VL, LlavaOneVision, InternVL3, Gemma3,
# Llama3_2_Vision), named by the profile's `adapter_class`; manifests.py points lmms-eval at them.
for _profile in PROFILES.values():
    if _profile.third_party is None:
        globals()[_profile.adapter_class] = _adapter_class(_profile)
