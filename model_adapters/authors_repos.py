"""Adapters for the paper models that load only through their authors' repositories (docs/reference.md §7.3, §7.6).

* `--model medvision_healthgpt`: HealthGPT-L14, phi-4 + CLIP ViT-L/14-336 + H-LoRA (DCDmllm/HealthGPT).
* `--model medvision_meddr`: MedDr 40B, InternVL-style chat model (sunanhe/MedDr).
* `--model medvision_huatuogpt_vision`: HuatuoGPT-Vision-34B through `cli.HuatuoChatbot`
  (FreedomIntelligence/HuatuoGPT-Vision).

Each adapter finds the checkout from `repo_dir=` or an environment variable, prepends it to `sys.path`
inside `__init__` (never at import), and raises `AdapterConfigError` naming the repository, the paper's
commit, the variable and the export-requests/replay route when the checkout is missing or unusable.

Image conventions: `expand2square` pads a PIL image to a centred square (the paste offset is
`(long - short) // 2`) with a background colour given as 0-255 RGB integers, computed as
`int(mean * 255)` of the processor mean (truncation, as the authors' code does).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from loguru import logger
from medvision_metrics.options import did_you_mean
from PIL import Image

from medvision_tasks import settings as mv_settings
from medvision_tasks.hooks import note_generation

from .backends import GenResult
from .base import MedVisionModel
from .errors import AdapterConfigError
from .profiles import PROFILES, ModelProfile, ThirdPartyRepo
from .sampling import build_sampling

# CLIP ViT-L/14-336 (HealthGPT, HuatuoGPT-Vision): processor mean and input side.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_IMAGE_SIZE = 336
# MedDr (InternVL transform): ImageNet normalisation and input side.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MEDDR_INPUT_SIZE = 448
MEDDR_NUM_IMAGE_TOKEN = 256
IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
DEFAULT_SEED = 1234

# gen_kwargs keys the authors' `generate` calls take (types in sampling.GENERATION_TYPES).
GENERATION_KEYS: tuple[str, ...] = (
    "max_new_tokens",
    "min_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "do_sample",
    "num_beams",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
)

DTYPE_NAMES = {
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


# ------------------------------------------------------------------------------ author repositories
# The repository rows live in the model profiles (profiles.py); these names are kept for callers.
AuthorRepo = ThirdPartyRepo
HEALTHGPT_PROFILE = PROFILES["medvision_healthgpt"]
MEDDR_PROFILE = PROFILES["medvision_meddr"]
HUATUO_PROFILE = PROFILES["medvision_huatuogpt_vision"]
HEALTHGPT_REPO = HEALTHGPT_PROFILE.third_party
MEDDR_REPO = MEDDR_PROFILE.third_party
HUATUO_REPO = HUATUO_PROFILE.third_party
HEALTHGPT_HLORA_ENV = ("MEDVISION_HEALTHGPT_HLORA", "HEALTHGPT-L14-HLORA-WEIGHTS-FILE")
HEALTHGPT_HLORA_SOURCE = "com_hlora_weights_phi4.bin from https://huggingface.co/lintw/HealthGPT-L14"


def export_route(repo: AuthorRepo) -> str:
    """The supported route when the authors' environment cannot share a process with lmms-eval (§7.6)."""
    return (
        f"If its pinned environment ({repo.environment}) conflicts with lmms-eval, use the export route: "
        f"`medvision-eval export-requests --tasks ... --geometry '{repo.geometry}' --out DIR` here, "
        "`python docs/runners/run_external.py DIR/requests.jsonl --generate FILE.py:generate --out responses.jsonl` "
        "in the model's own environment, then score with `--model medvision_replay --model_args "
        f"path=responses.jsonl,geometry={repo.geometry}`."
    )


def missing_checkout_message(repo: AuthorRepo, problem: str) -> str:
    """Error text naming the repository, the commit, the variables and the export route."""
    folder = repo.url.rsplit("/", 1)[-1]
    return (
        f"--model {repo.adapter}: {problem}. {repo.model} runs from its authors' repository {repo.url} at commit "
        f"{repo.commit} (the paper's): `git clone {repo.url} && git -C {folder} checkout {repo.commit}`, then pass "
        f"--model_args repo_dir=PATH or set {repo.env_var}=PATH ({repo.official_env_var} is also accepted). "
        + export_route(repo)
    )


def resolve_repo_dir(repo: AuthorRepo, repo_dir: str | os.PathLike[str] | None) -> Path:
    """The checkout root from `repo_dir=` or the environment; AdapterConfigError when missing or incomplete."""
    value = str(repo_dir) if repo_dir else mv_settings.read_env_pair(repo.env_var, repo.official_env_var)
    if repo_dir:
        source = "repo_dir="
    else:
        source = f"{repo.env_var}=" if mv_settings.env_value(repo.env_var) else f"{repo.official_env_var}="
    if not value:
        raise AdapterConfigError(
            missing_checkout_message(repo, f"no checkout given (neither repo_dir= nor {repo.env_var} is set)")
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise AdapterConfigError(missing_checkout_message(repo, f"{source}{path} is not a folder"))
    for layout in repo.layouts:
        root = path / layout if layout else path
        if all((root / marker).exists() for marker in repo.markers):
            return root.resolve()
    expected = ", ".join(repo.markers)
    raise AdapterConfigError(
        missing_checkout_message(repo, f"{source}{path} does not hold the expected module ({expected})")
    )


def _module_origin(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if file:
        return Path(file).resolve()
    paths = list(getattr(module, "__path__", []) or [])
    return Path(paths[0]).resolve() if paths else None


def import_from_repo(repo: AuthorRepo, root: Path, names: list[str]) -> list[ModuleType]:
    """Prepend `root` to sys.path and import `names` from it, refusing same-named modules from elsewhere."""
    root_str = str(root)
    if root_str in sys.path:
        sys.path.remove(root_str)
    sys.path.insert(0, root_str)
    modules = []
    for name in names:
        top = name.split(".", 1)[0]
        loaded = sys.modules.get(top)
        origin = _module_origin(loaded) if loaded is not None else None
        if origin is not None and not origin.is_relative_to(root):
            raise AdapterConfigError(
                f"--model {repo.adapter}: module {top!r} is already imported from {origin}, not from the checkout "
                f"{root}; another installed package shadows the authors' code. Run in a fresh process without it. "
                + export_route(repo)
            )
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise AdapterConfigError(
                f"--model {repo.adapter}: importing {name} from the checkout {root} failed "
                f"({type(exc).__name__}: {exc}). " + export_route(repo)
            ) from exc
        modules.append(module)
    return modules


# -------------------------------------------------------------------------------- devices and dtypes
def resolve_device(device: str | None) -> str:
    """`device` as given, or auto: cuda when available, else cpu.

    Under a multi-process launch (WORLD_SIZE > 1) a bare `cuda` becomes `cuda:LOCAL_RANK`, one model per process.
    """
    import torch

    name = str(device) if device and str(device) != "auto" else None
    if name is not None and name.startswith("cuda") and not torch.cuda.is_available():
        raise AdapterConfigError(f"device={name} but no CUDA device is visible; pass device=cpu or leave it unset.")
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    world_size, local_rank = mv_settings.launch_ranks()
    if name.startswith("cuda") and world_size > 1:  # one model per process
        return f"cuda:{local_rank}"
    return name


def resolve_dtype(name: str) -> tuple[str, Any]:
    """(canonical name, torch dtype) of `name` (float16/fp16/half, bfloat16/bf16, float32/fp32)."""

    import torch

    key = str(name).strip().lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        hint = did_you_mean(key, DTYPE_NAMES)
        raise AdapterConfigError(f"dtype={name!r} is not supported.{hint} Use float16, bfloat16 or float32.")
    canonical = DTYPE_NAMES[key]
    return canonical, getattr(torch, canonical)


def resolve_attn(attn_implementation: str | None, device: str, auto_flash: bool) -> str | None:
    """Attention implementation: as given; or flash_attention_2 on CUDA when installed and `auto_flash`; else None."""
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if attn_implementation and attn_implementation != "auto":
        if attn_implementation == "flash_attention_2" and not has_flash:
            raise AdapterConfigError(
                "attn_implementation=flash_attention_2 but the flash_attn package is not installed; use sdpa or eager."
            )
        return attn_implementation
    if auto_flash and has_flash and device.startswith("cuda"):
        return "flash_attention_2"
    return None


# ---------------------------------------------------------------------------------- per-request seed
def request_seed(seed: int, config: str, row: int) -> int:
    """First 8 bytes (big-endian) of SHA-256 of `seed|config|row`, the rule of `medvision_random` (§7.5)."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{config}|{row}".encode()).digest()[:8], "big")


def seed_everything(value: int) -> None:
    """Seed torch (all devices), Python `random` and NumPy from one request seed."""
    import numpy as np
    import torch

    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)


# -------------------------------------------------------------------------------------- generation
def generation_kwargs(
    defaults: dict[str, Any], gen_kwargs: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Per-request `generate` keywords: paper defaults, overridden by the keys present in `gen_kwargs`
    (sampling.build_sampling, rule "transformers").

    Returns (kwargs, until, ignored keys). A given `temperature` without `do_sample` sets
    `do_sample = temperature > 0`; greedy decoding drops temperature/top_p/top_k. `until` is returned
    separately, because these models' own code has no stop strings; the adapter cuts the text instead.
    """
    built = build_sampling(defaults, gen_kwargs, GENERATION_KEYS, rule="transformers")
    return built.settings, built.until, built.ignored


def cut_at_stop(text: str, until: list[str]) -> str:
    """Text up to the earliest stop string of `until` (unchanged when none occurs)."""
    cut = len(text)
    for stop in until:
        index = text.find(stop)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


def first_output(output: Any) -> str:
    """HuatuoChatbot.inference returns a list of answers; the response is its first element (§7.7 bug 3)."""
    if isinstance(output, (list, tuple)):
        return str(output[0]) if output else ""
    return "" if output is None else str(output)


def count_tokens(tokenizer: Any, text: str) -> int | None:
    """Number of tokens of `text` without special tokens, or None when the tokenizer cannot say."""
    if tokenizer is None or not callable(tokenizer):
        return None
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------------------------------ images
def mean_rgb(mean: tuple[float, float, float] | list[float]) -> tuple[int, int, int]:
    """0-255 background colour of a processor mean, truncated as `int(x * 255)` (CLIP mean -> (122, 116, 104))."""
    r, g, b = (int(x * 255) for x in mean)
    return r, g, b


def expand2square(img: Image.Image, background_rgb: tuple[int, int, int]) -> Image.Image:
    """Pad to a square of side max(W, H), the image centred (offset (long - short) // 2), background filled."""
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new(img.mode, (side, side), background_rgb)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas


def clip336_pad_image(
    img: Image.Image, size: int = CLIP_IMAGE_SIZE, mean: tuple[float, ...] = CLIP_MEAN
) -> Image.Image:
    """RGB image padded to a square with the CLIP mean colour, then resized (bicubic) to `size` x `size`.

    This is what the CLIP-336 processor sees after the authors' `expand2square`: its shortest-edge resize
    and centre crop are the identity on the result.
    """
    square = expand2square(img.convert("RGB"), mean_rgb(mean))
    return square.resize((size, size), Image.Resampling.BICUBIC)


def meddr_square_image(img: Image.Image, input_size: int = MEDDR_INPUT_SIZE, pad2square: bool = False) -> Image.Image:
    """MedDr's pre-tensor step: RGB, padded with the ImageNet mean colour when `pad2square`, bicubic to input_size²."""
    rgb = img.convert("RGB")
    if pad2square:
        rgb = expand2square(rgb, mean_rgb(IMAGENET_MEAN))
    return rgb.resize((input_size, input_size), Image.Resampling.BICUBIC)


def build_transform(input_size: int = MEDDR_INPUT_SIZE, pad2square: bool = False) -> Callable[[Image.Image], Any]:
    """MedDr's evaluation transform: PIL image -> float32 tensor (3, input_size, input_size), ImageNet-normalised."""

    def transform(img: Image.Image) -> Any:
        import numpy as np
        import torch

        square = meddr_square_image(img, input_size, pad2square)
        array = np.asarray(square, dtype=np.float32) / 255.0
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_STD, dtype=np.float32)
        return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())

    return transform


# ----------------------------------------------------------------------------------------- prompts
def healthgpt_user_message(prompt: str) -> str:
    """HealthGPT user turn: the image token first, then the MedVision prompt."""
    return "<image>\n" + prompt


def meddr_user_message(prompt: str, num_image_token: int = MEDDR_NUM_IMAGE_TOKEN) -> str:
    """MedDr user turn as its `chat()` builds it: `<img>` + `<IMG_CONTEXT>` x N + `</img>` + newline + prompt."""
    return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token + IMG_END_TOKEN + "\n" + prompt


def huatuo_query(prompt: str) -> str:
    """The text HuatuoChatbot.inference tokenizes for one image: `<|user|>\\n<image>\\n{prompt}\\n<|assistant|>\\n`."""
    for token in ("<image>", "<s>", "</s>"):
        prompt = prompt.replace(token, "")
    user = ("<image>\n" + prompt).strip()
    return f"<|user|>\n{user}\n<|assistant|>\n"


# -------------------------------------------------------------------------------------- base class
class AuthorRepoModel(MedVisionModel):
    """Shared flow: validate, resolve checkout/device/dtype, load (subclass), register, then one call per sample."""

    profile: ModelProfile
    repo: ThirdPartyRepo
    default_pretrained = ""
    default_dtype = "float16"
    generation_defaults: dict[str, Any] = {}
    geometry = "clip336_pad"
    common_extra_args: tuple[str, ...] = ("repo_dir", "dtype", "seed")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that names its `profile` takes the adapter name, repository, default checkpoint, dtype,
        generation defaults and declared geometry from it."""
        super().__init_subclass__(**kwargs)
        profile = cls.__dict__.get("profile")
        if profile is not None:
            cls.adapter_name = profile.name
            cls.repo = profile.third_party
            cls.default_pretrained = profile.default_pretrained
            cls.default_dtype = profile.dtype
            cls.generation_defaults = dict(profile.generation)
            cls.geometry = profile.third_party.geometry

    def __init__(
        self,
        pretrained: str | None = None,
        backend: str | None = None,
        device: str | None = None,
        repo_dir: str | None = None,
        dtype: str | None = None,
        seed: int | str = DEFAULT_SEED,
        **kwargs: Any,
    ) -> None:
        super().__init__(pretrained=pretrained or self.default_pretrained, backend=backend or "hf", **kwargs)
        if self.backend != "hf":
            raise AdapterConfigError(
                f"--model {self.adapter_name} supports only backend=hf (the authors' own code), got "
                f"backend={self.backend!r}. " + export_route(self.repo)
            )
        try:
            self.seed = int(seed)
        except (TypeError, ValueError):
            raise AdapterConfigError(f"--model {self.adapter_name}: seed={seed!r} is not an integer.") from None
        if self.batch_size_per_gpu > 1:
            logger.info(f"{self.adapter_name}: one sample per call as in the paper; batch_size is ignored.")
        self.dtype_name, self.torch_dtype = resolve_dtype(dtype or self.default_dtype)
        self.device_name = resolve_device(device)
        self.repo_root = resolve_repo_dir(self.repo, repo_dir)
        self._ignored_keys: set[str] = set()
        self.load()
        self.register(dict(self.generation_defaults, seed=self.seed, seeded_per_request="sha256(seed|config|row)"))
        active = mv_settings.active_model()
        if active is not None:
            active.info.update(
                repository={"url": self.repo.url, "commit": self.repo.commit, "path": str(self.repo_root)},
                dtype=self.dtype_name,
                device=self.device_name,
            )

    @property
    def device(self) -> str:
        return self.device_name

    def load(self) -> None:
        """Import the authors' modules and load the weights (subclasses)."""
        raise NotImplementedError

    def generate_one(self, prompt: str, image: Image.Image, sampling: dict[str, Any]) -> tuple[str, int | None]:
        """(text, number of generated tokens or None) for one prompt and one RGB image (subclasses)."""
        raise NotImplementedError

    def extra_identity(self) -> dict[str, Any]:
        return {"dtype": self.dtype_name, "repository_commit": self.repo.commit}

    def respond_result(
        self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any
    ) -> GenResult:
        """One sample: the request-seeded answer cut at `until`, flagged truncated at max_new_tokens."""
        visuals = doc_to_visual(doc)
        if not visuals:
            raise ValueError(f"{doc['mv_config']} row {doc['mv_row']}: doc_to_visual returned no image")
        sampling, until, ignored = generation_kwargs(self.generation_defaults, gen_kwargs)
        new = set(ignored) - self._ignored_keys
        if new:
            self._ignored_keys |= new
            logger.warning(f"{self.adapter_name}: ignoring gen_kwargs {sorted(new)} (not generation settings).")
        seed_everything(request_seed(self.seed, doc["mv_config"], int(doc["mv_row"])))
        text, n_new = self.generate_one(prompt, visuals[0].convert("RGB"), sampling)
        limit = sampling.get("max_new_tokens")
        truncated = bool(n_new is not None and limit and n_new >= int(limit))
        if truncated:
            logger.warning(f"{self.adapter_name}: {doc['mv_config']} row {doc['mv_row']} hit max_new_tokens={limit}.")
        return GenResult(cut_at_stop(text, until), truncated=truncated, completion_tokens=n_new)

    def respond(self, doc: dict[str, Any], prompt: str, gen_kwargs: dict[str, Any], doc_to_visual: Any) -> str:
        result = self.respond_result(doc, prompt, gen_kwargs, doc_to_visual)
        if result.truncated:
            note_generation(doc["mv_task"], int(doc["mv_row"]), truncated=True)
        return result.text


# ---------------------------------------------------------------------------------------- HealthGPT
def linear_layer_names(model: Any) -> list[str]:
    """Leaf names of the language model's Linear layers (H-LoRA targets), without vision parts and lm_head."""
    import torch

    skip = ("mm_projector", "vision_tower", "vision_resampler")
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(part in name for part in skip):
            names.add(name.rsplit(".", 1)[-1])
    names.discard("lm_head")
    return sorted(names)


def add_index_tokens(tokenizer: Any, model: Any, vq_idx_nums: int) -> int:
    """Add HealthGPT's VQ index tokens and resize the embeddings; new rows get the mean of the old ones."""
    if len(getattr(tokenizer, "additional_special_tokens", []) or []) != 0:
        return 0
    tokens = ["<start_index>", *(f"<idx_{i}>" for i in range(vq_idx_nums)), "<end_index>", "<pixel_newline>"]
    added = int(tokenizer.add_special_tokens({"additional_special_tokens": tokens}))
    model.resize_token_embeddings(len(tokenizer))
    if added > 0:
        for weights in (model.get_input_embeddings().weight.data, model.get_output_embeddings().weight.data):
            weights[-added:] = weights[:-added].mean(dim=0, keepdim=True)
    return added


def healthgpt_vision_args(pretrained: str, vit_path: str, conv_template: str) -> Any:
    """Vision-module settings of HealthGPT's comprehension model (CLIP layer -2 patches, 2-layer GELU projector)."""
    import argparse

    return argparse.Namespace(
        freeze_backbone=False,
        mm_patch_merge_type="flat",
        mm_projector_type="mlp2x_gelu",
        mm_use_im_patch_token=False,
        mm_use_im_start_end=False,
        mm_vision_select_feature="patch",
        mm_vision_select_layer=-2,
        model_name_or_path=pretrained,
        pretrain_mm_mlp_adapter=None,
        tune_mm_mlp_adapter=False,
        version=conv_template,
        vision_tower=vit_path,
    )


def number_arg(name: str, value: Any, kind: type) -> Any:
    """`kind(value)` for a numeric model arg, or AdapterConfigError naming it."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise AdapterConfigError(f"{name}={value!r} is not a valid {kind.__name__}.") from None


class HealthGPTAdapter(AuthorRepoModel):
    """`--model medvision_healthgpt`: HealthGPT-L14 (phi-4 + CLIP-336 + H-LoRA), greedy, 1024 new tokens."""

    profile = HEALTHGPT_PROFILE
    extra_args = AuthorRepoModel.common_extra_args + (
        "hlora_path",
        "vit_path",
        "attn_implementation",
        "conv_template",
        "hlora_r",
        "hlora_alpha",
        "hlora_dropout",
        "hlora_nums",
        "vq_idx_nums",
    )

    def __init__(
        self,
        hlora_path: str | None = None,
        vit_path: str = "openai/clip-vit-large-patch14-336",
        attn_implementation: str | None = None,
        conv_template: str = "phi4_instruct",
        hlora_r: int | str = 32,
        hlora_alpha: int | str = 64,
        hlora_dropout: float | str = 0.0,
        hlora_nums: int | str = 4,
        vq_idx_nums: int | str = 8192,
        **kwargs: Any,
    ) -> None:
        self.hlora_arg = hlora_path
        self.vit_path = vit_path
        self.attn_implementation = attn_implementation
        self.conv_template = conv_template
        self.hlora = {
            "r": number_arg("hlora_r", hlora_r, int),
            "alpha": number_arg("hlora_alpha", hlora_alpha, int),
            "dropout": number_arg("hlora_dropout", hlora_dropout, float),
        }
        self.hlora_nums = number_arg("hlora_nums", hlora_nums, int)
        self.vq_idx_nums = number_arg("vq_idx_nums", vq_idx_nums, int)
        super().__init__(**kwargs)

    @staticmethod
    def _find_hlora(hlora_path: str | None) -> Path:
        value = hlora_path or mv_settings.read_env_pair(*HEALTHGPT_HLORA_ENV)
        if not value:
            raise AdapterConfigError(
                f"--model medvision_healthgpt needs the H-LoRA weights {HEALTHGPT_HLORA_SOURCE}; pass "
                f"--model_args hlora_path=FILE or set {HEALTHGPT_HLORA_ENV[0]}=FILE ({HEALTHGPT_HLORA_ENV[1]} is "
                "also accepted)."
            )
        path = Path(value).expanduser()
        if not path.is_file():
            raise AdapterConfigError(
                f"--model medvision_healthgpt: H-LoRA weights {path} do not exist; download {HEALTHGPT_HLORA_SOURCE}."
            )
        return path

    def load(self) -> None:
        import torch
        import transformers

        self.hlora_path = self._find_hlora(self.hlora_arg)
        constants, conversation, mm_utils, llava_phi3, peft = import_from_repo(
            self.repo,
            self.repo_root,
            [
                "llava.constants",
                "llava.conversation",
                "llava.mm_utils",
                "llava.model.language_model.llava_phi3",
                "llava.peft",
            ],
        )
        templates = conversation.conv_templates
        if self.conv_template not in templates:
            hint = did_you_mean(self.conv_template, templates)
            raise AdapterConfigError(
                f"conv_template={self.conv_template!r} is not in the repository's templates.{hint}"
            )
        self._conversation, self._mm_utils = conversation, mm_utils
        self._image_token_index = constants.IMAGE_TOKEN_INDEX
        load_kwargs: dict[str, Any] = {"torch_dtype": self.torch_dtype}
        attn = resolve_attn(self.attn_implementation, self.device_name, auto_flash=True)
        if attn:
            load_kwargs["attn_implementation"] = attn
        model = llava_phi3.LlavaPhiForCausalLM.from_pretrained(
            pretrained_model_name_or_path=self.pretrained, **load_kwargs
        )
        lora_config = peft.LoraConfig(
            r=self.hlora["r"],
            lora_alpha=self.hlora["alpha"],
            target_modules=linear_layer_names(model),
            lora_dropout=self.hlora["dropout"],
            bias="none",
            task_type="CAUSAL_LM",
            lora_nums=self.hlora_nums,
        )
        model = peft.get_peft_model(model, lora_config)
        tokenizer = transformers.AutoTokenizer.from_pretrained(self.pretrained, padding_side="right", use_fast=False)
        add_index_tokens(tokenizer, model, self.vq_idx_nums)
        model.get_model().initialize_vision_modules(
            model_args=healthgpt_vision_args(self.pretrained, self.vit_path, self.conv_template)
        )
        model.get_vision_tower().to(dtype=self.torch_dtype)
        result = model.load_state_dict(torch.load(self.hlora_path, map_location="cpu"), strict=False)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            logger.warning(f"medvision_healthgpt: {len(unexpected)} unexpected H-LoRA keys, e.g. {unexpected[:3]}")
        model.eval()
        model.to(device=self.device_name, dtype=self.torch_dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = model.get_vision_tower().image_processor

    def build_query(self, prompt: str) -> str:
        """The conversation text: template with user `<image>\\n{prompt}` and an open assistant turn."""
        conv = self._conversation.conv_templates[self.conv_template].copy()
        conv.append_message(conv.roles[0], healthgpt_user_message(prompt))
        conv.append_message(conv.roles[1], None)
        return conv.get_prompt()

    def generate_one(self, prompt: str, image: Image.Image, sampling: dict[str, Any]) -> tuple[str, int | None]:
        import torch

        query = self.build_query(prompt)
        ids = self._mm_utils.tokenizer_image_token(query, self.tokenizer, self._image_token_index, return_tensors="pt")
        input_ids = ids.unsqueeze(0).to(self.device_name)
        mean = tuple(getattr(self.image_processor, "image_mean", CLIP_MEAN))
        side = max(image.size)
        square = clip336_pad_image(image, CLIP_IMAGE_SIZE, mean)
        pixels = self.image_processor.preprocess(square, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            output = self.model.base_model.model.generate(
                input_ids,
                images=pixels.to(device=self.device_name, dtype=self.torch_dtype),
                image_sizes=(side, side),
                use_cache=True,
                **sampling,
            )
        return self.tokenizer.decode(output[0], skip_special_tokens=True), int(output.shape[-1])


# -------------------------------------------------------------------------------------------- MedDr
class MedDrAdapter(AuthorRepoModel):
    """`--model medvision_meddr`: MedDr 40B through the repository's InternVLChatModel, greedy, 512 new tokens.

    On CUDA the repository's own `model.chat()` runs (it moves inputs with `.cuda()`, so the adapter first
    selects the device). Elsewhere the adapter builds the same query from the repository's conversation
    template and calls `model.generate` with inputs on the configured device.
    """

    profile = MEDDR_PROFILE
    extra_args = AuthorRepoModel.common_extra_args + ("attn_implementation", "device_map")

    def __init__(self, attn_implementation: str | None = None, device_map: str | None = None, **kwargs: Any) -> None:
        self.attn_implementation = attn_implementation
        self.device_map = device_map
        super().__init__(**kwargs)

    def load(self) -> None:
        import transformers

        (internvl_chat,) = import_from_repo(self.repo, self.repo_root, ["src.model.internvl_chat"])
        load_kwargs: dict[str, Any] = {"low_cpu_mem_usage": True, "torch_dtype": self.torch_dtype}
        attn = resolve_attn(self.attn_implementation, self.device_name, auto_flash=False)
        if attn:
            load_kwargs["attn_implementation"] = attn
        if self.device_map:
            load_kwargs["device_map"] = self.device_map
        model = internvl_chat.InternVLChatModel.from_pretrained(self.pretrained, **load_kwargs).eval()
        if not self.device_map:
            model = model.to(self.device_name)
        self.model = model
        self.tokenizer = transformers.LlamaTokenizer.from_pretrained(self.pretrained)
        config = model.config
        self.image_size = int(config.force_image_size or config.vision_config.image_size)
        self.pad2square = bool(getattr(config, "pad2square", False))
        self.transform = build_transform(self.image_size, self.pad2square)
        model.img_context_token_id = self.tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        # The geometry follows the checkpoint: a stretch to N x N, or pad-to-square then N x N.
        self.geometry = f"clip336_pad:size={self.image_size}" if self.pad2square else f"fixed({self.image_size})"
        self.use_chat = self.device_name.startswith("cuda")
        if self.use_chat and ":" in self.device_name:
            import torch

            torch.cuda.set_device(self.device_name)  # chat() sends its inputs to the current CUDA device
        (self._conversation,) = import_from_repo(self.repo, self.repo_root, ["src.utils.conversation"])

    @property
    def input_device(self) -> str:
        """Device of the inputs: the model's (first shard under device_map) or the configured one."""
        return str(getattr(self.model, "device", self.device_name))

    def build_query(self, prompt: str) -> str:
        """The text `chat()` tokenizes: the checkpoint's conversation template around the image-first user turn."""
        template = self._conversation.get_conv_template(self.model.template)
        template.append_message(template.roles[0], meddr_user_message(prompt, int(self.model.num_image_token)))
        template.append_message(template.roles[1], None)
        return template.get_prompt()

    def generate_one(self, prompt: str, image: Image.Image, sampling: dict[str, Any]) -> tuple[str, int | None]:
        import torch

        pixels = self.transform(image).unsqueeze(0).to(device=self.input_device, dtype=self.torch_dtype)
        if self.use_chat:
            extra = {"print_out": False} if "print_out" in inspect.signature(self.model.chat).parameters else {}
            with torch.inference_mode():
                text = self.model.chat(
                    tokenizer=self.tokenizer,
                    pixel_values=pixels,
                    question=prompt,
                    generation_config=dict(sampling),
                    **extra,
                )
            return text, count_tokens(self.tokenizer, text)
        encoded = self.tokenizer(self.build_query(prompt), return_tensors="pt")
        with torch.inference_mode():
            output = self.model.generate(
                pixel_values=pixels,
                input_ids=encoded["input_ids"].to(self.input_device),
                attention_mask=encoded["attention_mask"].to(self.input_device),
                **sampling,
            )
        return self.tokenizer.batch_decode(output, skip_special_tokens=True)[0], int(output.shape[-1])


# ---------------------------------------------------------------------------------- HuatuoGPT-Vision
def _cast_images(generate: Callable[..., Any], dtype: Any) -> Callable[..., Any]:
    """Wrap `model.generate` so `images` arrive in `dtype` (HuatuoChatbot casts them to bfloat16 itself)."""

    def wrapped(*args: Any, images: Any = None, **kwargs: Any) -> Any:
        return generate(*args, images=None if images is None else images.to(dtype=dtype), **kwargs)

    return wrapped


class HuatuoGPTVisionAdapter(AuthorRepoModel):
    """`--model medvision_huatuogpt_vision`: HuatuoGPT-Vision-34B via `cli.HuatuoChatbot`, seeded sampling.

    Defaults (paper): do_sample, temperature 0.2, repetition_penalty 1.2, 512 new tokens, at least 1.
    Torch is seeded per request from SHA-256 of `seed|mv_config|mv_row`, so runs repeat.
    """

    profile = HUATUO_PROFILE
    extra_args = AuthorRepoModel.common_extra_args

    def load(self) -> None:
        import torch

        if "huatuogpt" not in str(self.pretrained).lower():
            raise AdapterConfigError(
                f"--model {self.adapter_name}: pretrained={self.pretrained!r}: HuatuoChatbot picks the architecture "
                "from the folder name, which must contain 'HuatuoGPT-Vision' (e.g. .../HuatuoGPT-Vision-34B)."
            )
        (cli,) = import_from_repo(self.repo, self.repo_root, ["cli"])
        bot = cli.HuatuoChatbot(self.pretrained, device=self.device_name)
        if self.torch_dtype != torch.bfloat16:
            bot.model = bot.model.to(dtype=self.torch_dtype)
            bot.model.generate = _cast_images(bot.model.generate, self.torch_dtype)
        self.bot = bot
        # Token ids and other keys the bot set for itself stay; the sampling keys are set per request.
        self._bot_fixed = {k: v for k, v in bot.gen_kwargs.items() if k not in GENERATION_KEYS}

    def generate_one(self, prompt: str, image: Image.Image, sampling: dict[str, Any]) -> tuple[str, int | None]:
        self.bot.gen_kwargs = {**self._bot_fixed, **sampling}
        text = first_output(self.bot.inference(prompt, [clip336_pad_image(image)]))
        return text, count_tokens(getattr(self.bot, "tokenizer", None), text)
