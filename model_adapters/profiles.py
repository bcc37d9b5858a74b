"""One declarative profile per `--model` name (docs/reference.md §7.3, §7.4): adding a model means adding a row.

A profile says which checkpoint to load, which backends may run it, how its messages are laid out (system
prompt; image before or after the text), which generation settings the paper used, which image geometry
its processor applies (docs/reference.md §3.6) and which task settings it changes (docs/reference.md §0.5). It holds
data only: this module imports no torch, transformers or lmms-eval, so tools and docs can read it cheaply.

Conventions:

* `generation` keys are the backend-neutral sampling keys of `GenRequest.sampling`. `temperature == 0`
  means greedy. A key absent from `generation` is left to the backend (for `hf`, the checkpoint's own
  `generation_config.json`).
* `geometry_params` are the defaults of the geometry rule. Keys named in `processor_args` are also model
  arguments (e.g. `max_pixels`) that set the processor limit and the stated geometry together; the adapter
  may refine the others from the checkpoint's processor config (e.g. LLaVA-OneVision grid pinpoints).
* The first entry of `checkpoints` is the default `pretrained`; every entry maps a checkpoint to the
  paper's `model_key` (docs/reference.md §7.3), which the leaderboard uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from medvision_tasks.geometry import GEOMETRY_RULES, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from medvision_tasks.prompts import MEDVISION_V0_SYSTEM_PROMPT

from .errors import AdapterConfigError

BACKENDS: tuple[str, ...] = ("hf", "vllm", "openai")
IMAGE_POSITIONS: tuple[str, ...] = ("after_text", "before_text")
# Families the `hf` backend knows; "third_party" models are run by their own adapters (docs/reference.md §7.6).
FAMILIES: tuple[str, ...] = ("qwen2_5_vl", "gemma3", "llava_onevision", "internvl", "mllama", "third_party")
GENERATION_KEYS: tuple[str, ...] = (
    "max_new_tokens",
    "temperature",
    "top_p",
    "do_sample",
    "num_beams",
    "repetition_penalty",
    "min_new_tokens",
)
DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
MEDGEMMA_SYSTEM_PROMPT = "You are an expert radiologist."
# Llama 3.2 Vision (Mllama) was dropped by vLLM after this release (docs/reference.md §7.4).
MLLAMA_MAX_VLLM_VERSION = "0.10.2"

# The paper's sampling for the vLLM-run models: temperature 0 (greedy), top_p 0.95, 1024 new tokens.
_VLLM_PAPER_SAMPLING = {"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 1024}
_QWEN_LIMITS = {"min_pixels": QWEN_MIN_PIXELS, "max_pixels": QWEN_MAX_PIXELS}


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint the profile knows, with the paper's `model_key` for it.

    `aliases` are other checkpoint basenames (case-insensitive) that stand for the same paper model, e.g. the
    H-LoRA weights file of HealthGPT.
    """

    model_key: str
    pretrained: str
    aliases: tuple[str, ...] = ()

    def basenames(self) -> tuple[str, ...]:
        """Lower-cased basenames that identify this checkpoint (its own, then the aliases)."""
        from medvision_metrics.reference import checkpoint_basename

        return (checkpoint_basename(self.pretrained).lower(),) + tuple(a.lower() for a in self.aliases)


@dataclass(frozen=True)
class ThirdPartyRepo:
    """The authors' repository a third-party model needs (docs/reference.md §7.6), and how to tell the user to get it.

    `adapter` and `model` are filled from the profile that holds the row.
    """

    url: str
    commit: str
    env_var: str  # MEDVISION_ spelling (wins)
    official_env_var: str  # also accepted
    markers: tuple[str, ...]  # paths that must exist under the checkout root
    layouts: tuple[str, ...]  # sub-folders tried as the checkout root ("" = the folder itself)
    environment: str  # the authors' pinned stack
    geometry: str  # geometry the adapter declares (also the one to pass on the export route)
    adapter: str = ""  # --model name
    model: str = ""  # paper name


@dataclass(frozen=True)
class ModelProfile:
    """Everything the adapter and the backends need to know about one `--model` name."""

    name: str
    paper_name: str
    checkpoints: tuple[Checkpoint, ...]
    family: str
    hf_class: str
    backends: tuple[str, ...]
    image_position: str
    generation: Mapping[str, Any]
    geometry_rule: str
    geometry_params: Mapping[str, Any] = field(default_factory=dict)
    processor_args: tuple[str, ...] = ()
    system_prompt: str | None = None
    task_defaults: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "bfloat16"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    max_vllm_version: str | None = None
    third_party: ThirdPartyRepo | None = None
    adapter_class: str = ""  # class name in medvision_adapters.chat (or .authors_repos for third-party models)
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        if not self.name.startswith("medvision_"):
            raise AdapterConfigError(
                f"{where}: --model names start with 'medvision_' (docs/reference.md §0.4); rename it."
            )
        if not self.checkpoints:
            raise AdapterConfigError(f"{where}: give at least one checkpoint (the first is the default).")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad or not self.backends:
            raise AdapterConfigError(
                f"{where}: backends {list(self.backends)} must be a non-empty subset of {BACKENDS}."
            )
        if self.family not in FAMILIES:
            raise AdapterConfigError(f"{where}: family {self.family!r} is not one of {', '.join(FAMILIES)}.")
        if self.image_position not in IMAGE_POSITIONS:
            raise AdapterConfigError(f"{where}: image_position must be one of {IMAGE_POSITIONS}.")
        unknown = sorted(set(self.generation) - set(GENERATION_KEYS))
        if unknown:
            raise AdapterConfigError(
                f"{where}: unknown generation keys {unknown}; valid: {', '.join(GENERATION_KEYS)}."
            )
        if self.geometry_rule not in GEOMETRY_RULES:
            raise AdapterConfigError(f"{where}: geometry rule {self.geometry_rule!r} is not one of {GEOMETRY_RULES}.")
        missing = [a for a in self.processor_args if a not in self.geometry_params]
        if missing:
            raise AdapterConfigError(f"{where}: processor_args {missing} need a default in geometry_params.")
        if self.dtype not in DTYPES:
            raise AdapterConfigError(f"{where}: dtype {self.dtype!r} is not one of {DTYPES}.")
        if not self.adapter_class.isidentifier():
            raise AdapterConfigError(f"{where}: adapter_class must be a Python class name, got {self.adapter_class!r}.")
        if (self.family == "third_party") != (self.third_party is not None):
            raise AdapterConfigError(f"{where}: family 'third_party' and a ThirdPartyRepo go together.")
        if self.third_party is not None and not self.third_party.adapter:
            filled = replace(self.third_party, adapter=self.name, model=self.paper_name)
            object.__setattr__(self, "third_party", filled)
        # Freeze the mappings so that a profile cannot be changed after construction.
        for name in ("generation", "geometry_params", "task_defaults"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def class_path(self) -> str:
        """Import path of the adapter class lmms-eval instantiates for this `--model` name."""
        module = "authors_repos" if self.third_party is not None else "chat"
        return f"medvision_adapters.{module}.{self.adapter_class}"

    @property
    def default_pretrained(self) -> str:
        return self.checkpoints[0].pretrained

    @property
    def default_geometry(self) -> str:
        """The geometry rule string with the profile's default parameters."""
        return format_geometry(self.geometry_rule, self.geometry_params)

    def model_key(self, pretrained: str | None) -> str | None:
        """The `model_key` of a checkpoint (default when None), matched by basename (case-insensitive) or
        alias; None for an unknown checkpoint."""
        from medvision_metrics.reference import checkpoint_basename

        wanted = checkpoint_basename(pretrained or self.default_pretrained).lower()
        for checkpoint in self.checkpoints:
            if wanted in checkpoint.basenames():
                return checkpoint.model_key
        return None


def format_geometry(rule: str, params: Mapping[str, Any]) -> str:
    """`rule:k=v,...` with None dropped and grid pinpoints as `HxW;HxW;...` (medvision_tasks.geometry syntax)."""
    items = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ";".join(f"{int(h)}x{int(w)}" for h, w in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        items.append(f"{key}={value}")
    return f"{rule}:{','.join(items)}" if items else rule


def _qwen(name: str, paper_name: str, checkpoints: tuple[Checkpoint, ...], **row: Any) -> ModelProfile:
    """A Qwen2.5-VL-architecture row: smart-resize geometry with the paper's explicit pixel limits."""
    return ModelProfile(
        name=name,
        paper_name=paper_name,
        checkpoints=checkpoints,
        family="qwen2_5_vl",
        hf_class="Qwen2_5_VLForConditionalGeneration",
        backends=BACKENDS,
        geometry_rule="qwen_smart_resize",
        geometry_params=_QWEN_LIMITS,
        processor_args=("min_pixels", "max_pixels"),
        **row,
    )


_ROWS: tuple[ModelProfile, ...] = (
    _qwen(
        "medvision_v0",
        "MedVision-V0 7B",
        (Checkpoint("medvision_v0_7b", "YongchengYAO/MedVision-V0-7B"),),
        system_prompt=MEDVISION_V0_SYSTEM_PROMPT,
        adapter_class="MedVisionV0",
        image_position="after_text",
        generation={"temperature": 0.0, "top_p": 0.95, "max_new_tokens": 4096},
        task_defaults={"prompt_style": "cot", "parse": "answer_tag", "reshape": 512},
        notes="Paper run: vLLM 0.10.0, batch 10/GPU. Images sent at 512x512, seen at 504x504.",
    ),
    _qwen(
        "medvision_lingshu",
        "Lingshu 32B",
        (Checkpoint("lingshu_32b", "lingshu-medical-mllm/Lingshu-32B"),),
        adapter_class="Lingshu",
        image_position="before_text",
        generation={"max_new_tokens": 1024},
        notes="Other sampling comes from the checkpoint's generation_config (docs/reference.md §9 Q7); "
        "greedy=true forces greedy.",
    ),
    ModelProfile(
        name="medvision_medgemma",
        adapter_class="MedGemma",
        paper_name="MedGemma",
        checkpoints=(
            Checkpoint("medgemma_4b", "google/medgemma-4b-it"),
            Checkpoint("medgemma_27b", "google/medgemma-27b-it"),
        ),
        family="gemma3",
        hf_class="Gemma3ForConditionalGeneration",
        backends=BACKENDS,
        system_prompt=MEDGEMMA_SYSTEM_PROMPT,
        image_position="after_text",
        generation={"do_sample": False, "max_new_tokens": 2048},
        geometry_rule="fixed",
        geometry_params={"size": 896},
        attn_implementation="eager",
        notes="Gated. The 4B model answers empty in dtypes other than bfloat16 (docs/reference.md §7.4).",
    ),
    _qwen(
        "medvision_qwen2_5_vl",
        "Qwen2.5-VL",
        (
            Checkpoint("qwen2_5_vl_7b", "Qwen/Qwen2.5-VL-7B-Instruct"),
            Checkpoint("qwen2_5_vl_32b", "Qwen/Qwen2.5-VL-32B-Instruct"),
        ),
        adapter_class="Qwen2_5_VL",
        image_position="after_text",
        generation=_VLLM_PAPER_SAMPLING,
        notes="MedVision SFT checkpoints (trained with [image, text]) also run here with pretrained=.",
    ),
    ModelProfile(
        name="medvision_llava_onevision",
        adapter_class="LlavaOneVision",
        paper_name="LLaVA-OneVision 72B",
        checkpoints=(Checkpoint("llava_onevision_72b", "llava-hf/llava-onevision-qwen2-72b-ov-hf"),),
        family="llava_onevision",
        hf_class="LlavaOnevisionForConditionalGeneration",
        backends=BACKENDS,
        image_position="after_text",
        generation=_VLLM_PAPER_SAMPLING,
        geometry_rule="llava_ov_anyres",
        geometry_params={"grid_pinpoints": None},
        dtype="float16",
        notes="[text, image] is sent; the llava-hf chat template renders the image before the text.",
    ),
    ModelProfile(
        name="medvision_internvl3",
        adapter_class="InternVL3",
        paper_name="InternVL3 38B",
        checkpoints=(Checkpoint("internvl3_38b", "OpenGVLab/InternVL3-38B"),),
        family="internvl",
        hf_class="InternVLChatModel",
        backends=BACKENDS,
        image_position="after_text",
        generation=_VLLM_PAPER_SAMPLING,
        geometry_rule="internvl_tiles",
        geometry_params={"max_num": 12},
        processor_args=("max_num",),
        trust_remote_code=True,
        notes="Remote-code checkpoint: pass trust_remote_code=true for hf and vllm. The placeholder lands "
        "before the text (docs/reference.md §9 Q9).",
    ),
    ModelProfile(
        name="medvision_gemma3",
        adapter_class="Gemma3",
        paper_name="Gemma3 27B",
        checkpoints=(Checkpoint("gemma3_27b", "google/gemma-3-27b-it"),),
        family="gemma3",
        hf_class="Gemma3ForConditionalGeneration",
        backends=BACKENDS,
        image_position="after_text",
        generation=_VLLM_PAPER_SAMPLING,
        geometry_rule="fixed",
        geometry_params={"size": 896},
        notes="Gated.",
    ),
    ModelProfile(
        name="medvision_llama3_2_vision",
        adapter_class="Llama3_2_Vision",
        paper_name="Llama3.2-Vision 11B",
        checkpoints=(Checkpoint("llama3_2_vision_11b", "meta-llama/Llama-3.2-11B-Vision-Instruct"),),
        family="mllama",
        hf_class="MllamaForConditionalGeneration",
        backends=BACKENDS,
        image_position="after_text",
        generation=_VLLM_PAPER_SAMPLING,
        geometry_rule="mllama_tiles",
        geometry_params={"tile_size": 560, "max_image_tiles": 4},
        dtype="float16",
        max_vllm_version=MLLAMA_MAX_VLLM_VERSION,
        notes="Gated. vLLM dropped Mllama after 0.10.2: use hf, or openai against a vLLM 0.10.2 server.",
    ),
    ModelProfile(
        name="medvision_healthgpt",
        adapter_class="HealthGPTAdapter",
        paper_name="HealthGPT-L14",
        # The loader's `pretrained` is the base LLM; the H-LoRA weights come from lintw/HealthGPT-L14.
        checkpoints=(
            Checkpoint("healthgpt_l14", "microsoft/phi-4", aliases=("HealthGPT-L14", "com_hlora_weights_phi4.bin")),
        ),
        family="third_party",
        hf_class="LlavaPhiForCausalLM",
        backends=("hf",),
        image_position="before_text",
        generation={"do_sample": False, "num_beams": 1, "max_new_tokens": 1024},
        geometry_rule="clip336_pad",
        geometry_params={"size": 336},
        dtype="float16",
        third_party=ThirdPartyRepo(
            url="https://github.com/DCDmllm/HealthGPT",
            commit="c044a13",
            env_var="MEDVISION_HEALTHGPT_DIR",
            official_env_var="HEALTHGPT_DIR",
            markers=(
                "llava/conversation.py",
                "llava/mm_utils.py",
                "llava/model/language_model/llava_phi3.py",
                "llava/peft",
            ),
            layouts=("", "HealthGPT"),
            environment="transformers 4.37.0 per its requirements.txt",
            geometry="clip336_pad",
        ),
        notes="Base microsoft/phi-4 + openai/clip-vit-large-patch14-336 + H-LoRA com_hlora_weights_phi4.bin "
        "(MEDVISION_HEALTHGPT_HLORA); phi4_instruct template, '<image>\\n' + prompt.",
    ),
    ModelProfile(
        name="medvision_meddr",
        adapter_class="MedDrAdapter",
        paper_name="MedDr 40B",
        checkpoints=(Checkpoint("meddr_40b", "Sunanhe/MedDr_0401"),),
        family="third_party",
        hf_class="InternVLChatModel",
        backends=("hf",),
        image_position="before_text",
        generation={"do_sample": False, "num_beams": 1, "max_new_tokens": 512},
        geometry_rule="fixed",
        geometry_params={"size": 448},
        dtype="float16",
        third_party=ThirdPartyRepo(
            url="https://github.com/sunanhe/MedDr",
            commit="48d7cd7",
            env_var="MEDVISION_MEDDR_DIR",
            official_env_var="MedDr_DIR",
            markers=("src/model/internvl_chat", "src/utils/conversation.py"),
            layouts=("",),
            environment="transformers 4.37.2, Python 3.9, OpenGVLab/InternVL @ 2410d1d requirements",
            geometry="fixed(448)",
        ),
        notes="Model chat(): <img><IMG_CONTEXT>x256</img>\\n + prompt; template from config.template.",
    ),
    ModelProfile(
        name="medvision_huatuogpt_vision",
        adapter_class="HuatuoGPTVisionAdapter",
        paper_name="HuatuoGPT-Vision 34B",
        checkpoints=(Checkpoint("huatuogpt_vision_34b", "FreedomIntelligence/HuatuoGPT-Vision-34B"),),
        family="third_party",
        hf_class="LlavaLlamaForCausalLM",
        backends=("hf",),
        image_position="before_text",
        generation={
            "do_sample": True,
            "temperature": 0.2,
            "repetition_penalty": 1.2,
            "max_new_tokens": 512,
            "min_new_tokens": 1,
        },
        geometry_rule="clip336_pad",
        geometry_params={"size": 336},
        third_party=ThirdPartyRepo(
            url="https://github.com/FreedomIntelligence/HuatuoGPT-Vision",
            commit="e1a52dc",
            env_var="MEDVISION_HUATUO_DIR",
            official_env_var="HuatuoGPTVision_DIR",
            markers=("cli.py", "llava"),
            layouts=("",),
            environment="transformers 4.40.0",
            geometry="clip336_pad",
        ),
        notes="HuatuoChatbot.inference() returns a list: take [0]. Seeded per request (docs/reference.md §7.4).",
    ),
)

PROFILES: Mapping[str, ModelProfile] = MappingProxyType({row.name: row for row in _ROWS})


def get_profile(name: str) -> ModelProfile:
    """The profile of a `--model` name; AdapterConfigError with the closest name otherwise."""
    if name in PROFILES:
        return PROFILES[name]
    from medvision_metrics.options import did_you_mean

    hint = did_you_mean(name, PROFILES)
    raise AdapterConfigError(f"no model profile {name!r}.{hint} Known: {', '.join(sorted(PROFILES))}.")


def model_key_for(adapter: str, pretrained: str | None) -> str | None:
    """The paper's `model_key` for (adapter, pretrained), or None when the pair is not a paper model."""
    profile = PROFILES.get(adapter)
    return profile.model_key(pretrained) if profile else None


def model_key_table() -> dict[str, Any]:
    """The checkpoint -> `model_key` facts of every profile, as the leaderboard reads them from
    `medvision_metrics/data/model_keys.json` (the metrics package cannot import this module)."""
    adapters = {
        profile.name: {
            "default": profile.checkpoints[0].model_key,
            "checkpoints": {name: c.model_key for c in profile.checkpoints for name in c.basenames()},
        }
        for profile in PROFILES.values()
    }
    return {"generated_by": "python -m medvision_adapters.profiles --write", "adapters": adapters}


def main(argv: list[str] | None = None) -> int:
    """`--write` regenerates the leaderboard's model-key table from the profiles; `--check` fails on drift."""
    import argparse
    import json

    from medvision_metrics.reference import MODEL_KEYS_FILE

    parser = argparse.ArgumentParser(prog="python -m medvision_adapters.profiles", description=main.__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = json.dumps(model_key_table(), indent=2, sort_keys=True) + "\n"
    if args.write:
        MODEL_KEYS_FILE.write_text(text, encoding="utf-8")
        print(MODEL_KEYS_FILE)
        return 0
    current = MODEL_KEYS_FILE.read_text(encoding="utf-8") if MODEL_KEYS_FILE.is_file() else ""
    if current != text:
        print(f"{MODEL_KEYS_FILE} is out of date; run `python -m medvision_adapters.profiles --write`.")
        return 1
    print(f"{MODEL_KEYS_FILE} is current.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
