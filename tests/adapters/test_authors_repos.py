"""HealthGPT-L14, MedDr and HuatuoGPT-Vision adapters against fake author repositories (docs/reference.md §7.3, §7.6).

Each fake repository is a minimal Python package written to tmp_path with the module and class names the
adapter imports. Its objects record the prompts, images and generation keywords they receive, refuse
`.cuda()`, and return fixed text (the Huatuo bot returns a list, like the real one).
"""

from __future__ import annotations

import random
import re
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from medvision_adapters import authors_repos as special
from medvision_adapters.authors_repos import (
    CLIP_MEAN,
    HEALTHGPT_REPO,
    HUATUO_REPO,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MEDDR_REPO,
    HealthGPTAdapter,
    HuatuoGPTVisionAdapter,
    MedDrAdapter,
)
from medvision_adapters.baselines import seeded_rng
from medvision_adapters.errors import AdapterConfigError
from PIL import Image

from medvision_tasks import hooks, settings
from medvision_tasks.preflight import expand

CLIP_PAD_RGB = (122, 116, 104)  # int(x * 255) of the CLIP mean
IMAGENET_PAD_RGB = (123, 116, 103)  # int(x * 255) of the ImageNet mean
TL_TASK = "medvision_demo_tl_kits23_task01_axial"
DET_TASK = "medvision_demo_detection_kits23_task01_axial"
FAKE_TOP_LEVEL = ("llava", "src", "cli")  # packages of the fake repositories, dropped after each test
REPO_ENV_VARS = [
    name for repo in (HEALTHGPT_REPO, MEDDR_REPO, HUATUO_REPO) for name in (repo.env_var, repo.official_env_var)
] + list(special.HEALTHGPT_HLORA_ENV)


# ------------------------------------------------------------------------------------ fake repositories
FAKE_TORCH_MODEL = '''
import torch


class RecordingModel(torch.nn.Module):
    """Records .to() calls and generate() inputs; .cuda() is forbidden."""

    def __init__(self):
        super().__init__()
        self.to_calls = []
        self.generate_calls = []

    def to(self, *args, **kwargs):
        self.to_calls.append((args, kwargs))
        return self

    def cuda(self, *args, **kwargs):
        raise AssertionError("adapters must not call .cuda()")
'''

HEALTHGPT_FILES = {
    "llava/__init__.py": "",
    "llava/constants.py": "IMAGE_TOKEN_INDEX = -200\nDEFAULT_IMAGE_TOKEN = '<image>'\n",
    "llava/conversation.py": """
        class Conversation:
            def __init__(self, system, roles, sep):
                self.system, self.roles, self.sep = system, roles, sep
                self.messages = []

            def copy(self):
                return Conversation(self.system, self.roles, self.sep)

            def append_message(self, role, message):
                self.messages.append([role, message])
                BUILT.append(self)

            def get_prompt(self):
                text = self.system + self.sep
                for role, message in self.messages:
                    text += role + ("" if message is None else message + self.sep)
                return text


        BUILT = []
        conv_templates = {
            "phi4_instruct": Conversation("<|system|>sys", ("<|user|>", "<|assistant|>"), "<|end|>"),
            "phi3_instruct": Conversation("<|system|>old", ("<|user|>", "<|assistant|>"), "<|end|>"),
        }
    """,
    "llava/mm_utils.py": """
        import torch

        CALLS = []


        def tokenizer_image_token(prompt, tokenizer, image_token_index, return_tensors=None):
            CALLS.append({"prompt": prompt, "image_token_index": image_token_index})
            ids = [1, 2, image_token_index, 3]
            return torch.tensor(ids) if return_tensors == "pt" else ids
    """,
    "llava/peft/__init__.py": """
        class LoraConfig:
            def __init__(self, **kwargs):
                self.kwargs = kwargs


        class _Base:
            def __init__(self, model):
                self.model = model


        class PeftModel:
            def __init__(self, model, config):
                self.base_model = _Base(model)
                self.peft_config = config

            def __getattr__(self, name):
                return getattr(self.base_model.model, name)


        def get_peft_model(model, config):
            return PeftModel(model, config)
    """,
    "llava/model/__init__.py": "",
    "llava/model/language_model/__init__.py": "",
    "llava/model/language_model/llava_phi3.py": FAKE_TORCH_MODEL
    + """

class ClipProcessor:
    image_mean = [0.48145466, 0.4578275, 0.40821073]

    def __init__(self):
        self.seen = []

    def preprocess(self, image, return_tensors="pt"):
        self.seen.append(image.copy())
        return {"pixel_values": torch.zeros(1, 3, image.size[1], image.size[0])}


class VisionTower:
    def __init__(self):
        self.image_processor = ClipProcessor()
        self.dtypes = []

    def to(self, dtype=None, device=None):
        self.dtypes.append(dtype)
        return self


class Inner:
    def __init__(self, owner):
        self.owner = owner

    def initialize_vision_modules(self, model_args):
        self.owner.vision_args = model_args


class LlavaPhiForCausalLM(RecordingModel):
    def __init__(self):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(10, 4)
        self.q_proj = torch.nn.Linear(4, 4)
        self.o_proj = torch.nn.Linear(4, 4)
        self.mm_projector = torch.nn.Linear(4, 4)
        self.lm_head = torch.nn.Linear(4, 10, bias=False)
        self.tower = VisionTower()
        self.vision_args = None
        self.load_kwargs = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, **kwargs):
        model = cls()
        model.load_kwargs = dict(kwargs, path=pretrained_model_name_or_path)
        return model

    def get_model(self):
        return Inner(self)

    def get_vision_tower(self):
        return self.tower

    def get_input_embeddings(self):
        return self.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def resize_token_embeddings(self, n):
        old_in, old_out = self.embed_tokens.weight.data, self.lm_head.weight.data
        self.embed_tokens = torch.nn.Embedding(n, 4)
        self.embed_tokens.weight.data[: len(old_in)] = old_in
        self.lm_head = torch.nn.Linear(4, n, bias=False)
        self.lm_head.weight.data[: len(old_out)] = old_out

    def generate(self, input_ids, images=None, image_sizes=None, **kwargs):
        self.generate_calls.append(
            {"input_ids": input_ids, "images": images, "image_sizes": image_sizes, "kwargs": kwargs}
        )
        return torch.tensor([[5, 6, 7]])
""",
}

MEDDR_FILES = {
    "src/__init__.py": "",
    "src/model/__init__.py": "",
    "src/utils/__init__.py": "",
    "src/utils/conversation.py": """
        class Template:
            def __init__(self, name):
                self.name = name
                self.roles = ("<|im_start|>user\\n", "<|im_start|>assistant\\n")
                self.messages = []

            def append_message(self, role, message):
                self.messages.append([role, message])

            def get_prompt(self):
                text = "<|im_start|>system\\n" + self.name + "<|im_end|>"
                for role, message in self.messages:
                    text += role + ("" if message is None else message + "<|im_end|>")
                return text


        def get_conv_template(name):
            return Template(name)
    """,
    "src/model/internvl_chat/__init__.py": FAKE_TORCH_MODEL
    + """

from types import SimpleNamespace


class InternVLChatModel(RecordingModel):
    PAD2SQUARE = False

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(
            force_image_size=448, vision_config=SimpleNamespace(image_size=448), pad2square=self.PAD2SQUARE
        )
        self.template = "internlm2-chat"
        self.num_image_token = 256
        self.img_context_token_id = None
        self.chat_calls = []
        self.load_kwargs = None

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        model = cls()
        model.load_kwargs = dict(kwargs, path=path)
        return model

    def eval(self):
        return self

    def chat(self, tokenizer, pixel_values, question, generation_config, IMG_START_TOKEN="<img>",
             IMG_END_TOKEN="</img>", IMG_CONTEXT_TOKEN="<IMG_CONTEXT>", print_out=True):
        from src.utils.conversation import get_conv_template

        template = get_conv_template(self.template)
        image_tokens = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * self.num_image_token + IMG_END_TOKEN
        template.append_message(template.roles[0], image_tokens + "\\n" + question)
        template.append_message(template.roles[1], None)
        self.chat_calls.append(
            {"query": template.get_prompt(), "pixel_values": pixel_values, "generation_config": generation_config,
             "print_out": print_out}
        )
        return "chat answer 1, 2"

    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, **kwargs):
        self.generate_calls.append(
            {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask, "kwargs": kwargs}
        )
        return torch.tensor([[8, 9]])
""",
}

HUATUO_FILES = {
    "llava/__init__.py": "",
    "cli.py": FAKE_TORCH_MODEL
    + """

class Tokenizer:
    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": text.split()}


class HuatuoChatbot:
    def __init__(self, model_dir, device="cuda"):
        self.model_dir = model_dir
        self.device = device
        self.gen_kwargs = {"do_sample": False, "max_new_tokens": 512, "min_new_tokens": 1, "repetition_penalty": 1.2}
        self.gen_kwargs["eos_token_id"] = 7
        self.gen_kwargs["pad_token_id"] = 7
        self.model = Model().to(device)
        self.tokenizer = Tokenizer()
        self.queries = []
        self.images = []
        self.gen_kwargs_seen = []

    def inference(self, text, images=None):
        for token in ("<image>", "<s>", "</s>"):
            text = text.replace(token, "")
        for _ in images:
            text = "<image>\\n" + text
        self.queries.append("<|user|>\\n" + text.strip() + "\\n<|assistant|>\\n")
        self.images.extend(image.copy() for image in images)
        self.gen_kwargs_seen.append(dict(self.gen_kwargs))
        pixels = torch.zeros(len(images), 3, 336, 336).to(dtype=torch.bfloat16)
        self.model.generate(torch.tensor([[1]]), images=pixels, use_cache=True, **self.gen_kwargs)
        draw = self.model.generate_calls[-1]["draw"]
        return [f"The answer is {draw:.6f}", "a second beam"]


class Model(RecordingModel):
    def generate(self, input_ids, images=None, **kwargs):
        self.generate_calls.append(
            {"images_dtype": images.dtype, "kwargs": kwargs, "seed": torch.initial_seed(), "draw": torch.rand(1).item()}
        )
        return torch.tensor([[1, 2, 3]])
""",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


class FakeSlowTokenizer:
    """Stands in for transformers.AutoTokenizer / LlamaTokenizer (whitespace tokens)."""

    def __init__(self, path: str, kwargs: dict[str, Any]) -> None:
        self.path, self.kwargs = path, kwargs
        self.additional_special_tokens: list[str] = []
        self.decoded: list[Any] = []

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> FakeSlowTokenizer:
        return cls(path, kwargs)

    def add_special_tokens(self, tokens: dict[str, list[str]]) -> int:
        self.additional_special_tokens = list(tokens["additional_special_tokens"])
        return len(self.additional_special_tokens)

    def __len__(self) -> int:
        return 10 + len(self.additional_special_tokens)

    def __call__(self, text: str, add_special_tokens: bool = True, return_tensors: str | None = None) -> dict:
        ids = list(range(len(text.split())))
        if return_tensors == "pt":
            return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        return {"input_ids": ids}

    def convert_tokens_to_ids(self, token: str) -> int:
        return 92546 if token == "<IMG_CONTEXT>" else 0

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        self.decoded.append(ids)
        return "12.5, 8.0"

    def batch_decode(self, ids: Any, skip_special_tokens: bool = False) -> list[str]:
        return ["generate answer 3, 4"]


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No repository variables from the host; modules and sys.path entries of fake repos are dropped after."""
    for name in REPO_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    path = list(sys.path)
    yield
    for name in [n for n in sys.modules if n.split(".", 1)[0] in FAKE_TOP_LEVEL]:
        del sys.modules[name]
    sys.path[:] = path


@pytest.fixture
def fake_tokenizers(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "AutoTokenizer", FakeSlowTokenizer)
    monkeypatch.setattr(transformers, "LlamaTokenizer", FakeSlowTokenizer)


@pytest.fixture
def healthgpt_repo(tmp_path) -> Path:
    return write_tree(tmp_path / "HealthGPT", HEALTHGPT_FILES)


@pytest.fixture
def hlora_file(tmp_path) -> Path:
    path = tmp_path / "com_hlora_weights_phi4.bin"
    torch.save({}, path)
    return path


@pytest.fixture
def meddr_repo(tmp_path) -> Path:
    return write_tree(tmp_path / "MedDr", MEDDR_FILES)


@pytest.fixture
def huatuo_repo(tmp_path) -> Path:
    return write_tree(tmp_path / "HuatuoGPT-Vision", HUATUO_FILES)


def demo_docs(task: str) -> list[dict[str, Any]]:
    """Real demo rows of one task, through the stub the task YAML uses."""
    (sub,) = [s for s in expand(["medvision_demo"]) if s.name == task]
    stub = {
        "mv_task": sub.name,
        "mv_config": sub.config,
        "mv_family": sub.family,
        "mv_variant": {"set": sub.set, "prompt_style": sub.prompt_style, "reshape": sub.reshape},
        "mv_data_root_kind": sub.data_root_kind,
    }
    return hooks.build_rows(stub)


def make_healthgpt(repo: Path, hlora: Path, **kwargs: Any) -> HealthGPTAdapter:
    return HealthGPTAdapter(repo_dir=str(repo), hlora_path=str(hlora), device="cpu", **kwargs)


def make_huatuo(repo: Path, tmp_path: Path, **kwargs: Any) -> HuatuoGPTVisionAdapter:
    return HuatuoGPTVisionAdapter(
        repo_dir=str(repo), pretrained=str(tmp_path / "HuatuoGPT-Vision-34B"), device="cpu", **kwargs
    )


# ------------------------------------------------------------------------------------- pure functions
def test_mean_colours():
    assert special.mean_rgb(CLIP_MEAN) == CLIP_PAD_RGB
    assert special.mean_rgb(IMAGENET_MEAN) == IMAGENET_PAD_RGB


@pytest.mark.parametrize(
    ("size", "paste_xy"),
    [((60, 40), (0, 10)), ((40, 61), (10, 0)), ((30, 30), (0, 0))],  # offset = (long - short) // 2
)
def test_expand2square_centres_and_fills(size, paste_xy):
    img = Image.new("RGB", size, (255, 0, 0))
    out = special.expand2square(img, CLIP_PAD_RGB)
    side = max(size)
    assert out.size == (side, side)
    x, y = paste_xy
    assert out.getpixel((x, y)) == (255, 0, 0)
    assert out.getpixel((x + size[0] - 1, y + size[1] - 1)) == (255, 0, 0)
    if size[0] != size[1]:
        assert out.getpixel((0, 0)) == CLIP_PAD_RGB and out.getpixel((side - 1, side - 1)) == CLIP_PAD_RGB


def test_clip336_pad_image_size_and_colour():
    img = Image.new("L", (64, 16), 255)  # wide: bands above and below
    out = special.clip336_pad_image(img)
    assert out.mode == "RGB" and out.size == (336, 336)
    assert out.getpixel((168, 5)) == CLIP_PAD_RGB and out.getpixel((168, 330)) == CLIP_PAD_RGB
    assert out.getpixel((168, 168)) == (255, 255, 255)


def test_meddr_transform_stretch_and_pad():
    img = Image.new("RGB", (64, 16), (255, 255, 255))
    stretched = special.meddr_square_image(img, 448, pad2square=False)
    assert stretched.size == (448, 448) and stretched.getpixel((5, 5)) == (255, 255, 255)
    padded = special.meddr_square_image(img, 448, pad2square=True)
    assert padded.size == (448, 448) and padded.getpixel((224, 5)) == IMAGENET_PAD_RGB
    tensor = special.build_transform(448, pad2square=True)(img)
    assert tuple(tensor.shape) == (3, 448, 448) and tensor.dtype == torch.float32
    for c in range(3):  # pad pixel normalised: (int(m*255)/255 - m) / s
        expected = (IMAGENET_PAD_RGB[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert tensor[c, 5, 224].item() == pytest.approx(expected, abs=1e-5)
        assert tensor[c, 224, 224].item() == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-5)


def test_prompt_layouts():
    assert special.healthgpt_user_message("Q?") == "<image>\nQ?"
    assert special.meddr_user_message("Q?") == "<img>" + "<IMG_CONTEXT>" * 256 + "</img>\nQ?"
    assert special.huatuo_query("Q?") == "<|user|>\n<image>\nQ?\n<|assistant|>\n"


def test_generation_kwargs_defaults_overrides_and_until():
    defaults = HuatuoGPTVisionAdapter.generation_defaults
    kwargs, until, ignored = special.generation_kwargs(defaults, {"until": []})
    assert kwargs == {
        "do_sample": True,
        "temperature": 0.2,
        "repetition_penalty": 1.2,
        "max_new_tokens": 512,
        "min_new_tokens": 1,
    }
    assert until == [] and ignored == []
    kwargs, until, _ = special.generation_kwargs(defaults, {"max_new_tokens": "4096", "until": "\n\n"})
    assert kwargs["max_new_tokens"] == 4096 and kwargs["temperature"] == 0.2 and until == ["\n\n"]
    kwargs, _, _ = special.generation_kwargs(defaults, {"temperature": 0})  # greedy drops sampling keys
    assert kwargs["do_sample"] is False and "temperature" not in kwargs and kwargs["repetition_penalty"] == 1.2
    kwargs, _, ignored = special.generation_kwargs({"do_sample": False}, {"temperature": 0.7, "image_aspect": "x"})
    assert kwargs == {"do_sample": True, "temperature": 0.7} and ignored == ["image_aspect"]
    assert special.cut_at_stop("1, 2\n\nmore", ["\n\n", "more"]) == "1, 2"


def test_request_seed_matches_random_baseline_rule():
    value = special.request_seed(1234, "KiTS23_TumorLesionSize_Task01_Axial_Test", 3)
    assert random.Random(value).random() == seeded_rng(1234, "KiTS23_TumorLesionSize_Task01_Axial_Test", 3).random()
    assert value != special.request_seed(1234, "KiTS23_TumorLesionSize_Task01_Axial_Test", 4)


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert special.resolve_device(None) == "cpu" and special.resolve_device("auto") == "cpu"
    with pytest.raises(AdapterConfigError, match="no CUDA device is visible"):
        special.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert special.resolve_device(None) == "cuda"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert special.resolve_device(None) == "cuda:1" and special.resolve_device("cuda") == "cuda:1"
    # one model per process: an explicit cuda:N is remapped too, as chat.py does (lmms-eval examples pass cuda:0)
    assert special.resolve_device("cuda:0") == "cuda:1" and special.resolve_device("cpu") == "cpu"


def test_dtype_resolution():
    assert special.resolve_dtype("bf16") == ("bfloat16", torch.bfloat16)
    assert special.resolve_dtype("torch.float16") == ("float16", torch.float16)
    with pytest.raises(AdapterConfigError, match="Did you mean 'float16'"):
        special.resolve_dtype("float61")


def test_no_cuda_calls_in_adapter_source():
    import ast

    tree = ast.parse(Path(special.__file__).read_text())
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda"
    ]
    assert calls == [], f".cuda() called at lines {calls}; devices come from the device argument"


# ------------------------------------------------------------------------------------ checkout errors
@pytest.mark.parametrize(
    ("cls", "repo"),
    [(HealthGPTAdapter, HEALTHGPT_REPO), (MedDrAdapter, MEDDR_REPO), (HuatuoGPTVisionAdapter, HUATUO_REPO)],
)
def test_missing_checkout_names_url_commit_env_and_route(cls, repo, tmp_path, hlora_file):
    extra = {"hlora_path": str(hlora_file)} if cls is HealthGPTAdapter else {}

    names = ".*".join(re.escape(x) for x in (repo.url, repo.commit, repo.env_var, repo.official_env_var))
    tail = names + ".*export-requests.*medvision_replay"
    with pytest.raises(AdapterConfigError, match=rf"(?s)no checkout given.*{tail}"):
        cls(device="cpu", **extra)
    with pytest.raises(AdapterConfigError, match=rf"(?s)is not a folder.*{tail}"):
        cls(repo_dir=str(tmp_path / "nowhere"), device="cpu", **extra)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterConfigError, match=rf"(?s)does not hold the expected module.*{tail}"):
        cls(repo_dir=str(tmp_path / "empty"), device="cpu", **extra)


def test_env_var_spellings(monkeypatch, tmp_path, huatuo_repo):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("HuatuoGPTVision_DIR", str(huatuo_repo))
    assert special.resolve_repo_dir(HUATUO_REPO, None) == huatuo_repo.resolve()  # official spelling alone
    monkeypatch.setenv("MEDVISION_HUATUO_DIR", str(other))
    with pytest.warns(UserWarning, match="MEDVISION_HUATUO_DIR=.* and HuatuoGPTVision_DIR=.* differ"):
        with pytest.raises(AdapterConfigError, match="MEDVISION_HUATUO_DIR=.*does not hold"):
            special.resolve_repo_dir(HUATUO_REPO, None)  # the MEDVISION_ spelling wins
    assert special.resolve_repo_dir(HUATUO_REPO, str(huatuo_repo)) == huatuo_repo.resolve()  # repo_dir= first


def test_healthgpt_layout_with_subfolder(tmp_path):
    write_tree(tmp_path / "checkout" / "HealthGPT", HEALTHGPT_FILES)
    root = special.resolve_repo_dir(HEALTHGPT_REPO, str(tmp_path / "checkout"))
    assert root == (tmp_path / "checkout" / "HealthGPT").resolve()


def test_import_errors_name_the_route(tmp_path):
    files = dict(HUATUO_FILES, **{"cli.py": "import module_that_does_not_exist_anywhere\n"})
    repo = write_tree(tmp_path / "HuatuoGPT-Vision", files)
    with pytest.raises(
        AdapterConfigError, match=r"(?s)importing cli from the checkout.*No module named.*export-requests"
    ):
        make_huatuo(repo, tmp_path)


def test_only_hf_backend_and_valid_args(tmp_path, huatuo_repo):
    with pytest.raises(AdapterConfigError, match=r"supports only backend=hf.*'vllm'"):
        make_huatuo(huatuo_repo, tmp_path, backend="vllm")
    with pytest.raises(AdapterConfigError, match=r"unknown --model_args key 'repodir'.*Did you mean 'repo_dir'"):
        HuatuoGPTVisionAdapter(repodir=str(huatuo_repo))
    with pytest.raises(AdapterConfigError, match="must contain 'HuatuoGPT-Vision'"):
        HuatuoGPTVisionAdapter(repo_dir=str(huatuo_repo), pretrained=str(tmp_path / "some-model"), device="cpu")


def test_healthgpt_needs_hlora(healthgpt_repo, fake_tokenizers, tmp_path, monkeypatch):
    with pytest.raises(
        AdapterConfigError, match=r"(?s)com_hlora_weights_phi4\.bin.*lintw/HealthGPT-L14.*HEALTHGPT_HLORA"
    ):
        HealthGPTAdapter(repo_dir=str(healthgpt_repo), device="cpu")
    monkeypatch.setenv("MEDVISION_HEALTHGPT_HLORA", str(tmp_path / "missing.bin"))
    with pytest.raises(AdapterConfigError, match="missing.bin do not exist"):
        HealthGPTAdapter(repo_dir=str(healthgpt_repo), device="cpu")


# ------------------------------------------------------------------------------------------- HealthGPT
def test_healthgpt_loads_like_the_authors_script(healthgpt_repo, hlora_file, fake_tokenizers):
    adapter = make_healthgpt(healthgpt_repo, hlora_file)
    peft_model = adapter.model
    inner = peft_model.base_model.model
    assert inner.load_kwargs == {"torch_dtype": torch.float16, "path": "microsoft/phi-4"}
    lora = peft_model.peft_config.kwargs
    assert (lora["r"], lora["lora_alpha"], lora["lora_dropout"], lora["lora_nums"]) == (32, 64, 0.0, 4)
    assert lora["target_modules"] == ["o_proj", "q_proj"]  # no lm_head, no projector
    assert adapter.tokenizer.kwargs == {"padding_side": "right", "use_fast": False}
    assert len(adapter.tokenizer.additional_special_tokens) == 8192 + 3
    assert inner.embed_tokens.weight.shape[0] == 10 + 8195
    assert inner.vision_args.vision_tower == "openai/clip-vit-large-patch14-336"
    assert inner.vision_args.version == "phi4_instruct" and inner.vision_args.mm_vision_select_layer == -2
    assert inner.to_calls[-1] == ((), {"device": "cpu", "dtype": torch.float16})
    info = settings.active_model().info
    assert info["adapter"] == "medvision_healthgpt" and info["geometry"] == "clip336_pad"
    assert info["repository"]["commit"] == "c044a13" and info["dtype"] == "float16"


def test_healthgpt_respond_prompt_image_and_generation(healthgpt_repo, hlora_file, fake_tokenizers):
    adapter = make_healthgpt(healthgpt_repo, hlora_file)
    doc = demo_docs(TL_TASK)[0]
    prompt = hooks.doc_to_text(doc)
    text = adapter.respond(doc, prompt, {"until": []}, hooks.doc_to_visual)
    assert text == "12.5, 8.0"
    conversation = sys.modules["llava.conversation"]
    conv = conversation.BUILT[-1]
    assert conv.messages == [["<|user|>", "<image>\n" + prompt], ["<|assistant|>", None]]
    mm_utils = sys.modules["llava.mm_utils"]
    assert mm_utils.CALLS[-1] == {"prompt": conv.get_prompt(), "image_token_index": -200}
    seen = adapter.image_processor.seen[-1]
    width, height = hooks.doc_to_visual(doc)[0].size
    assert seen.size == (336, 336) and width != height
    corner = (168, 2) if width > height else (2, 168)
    assert seen.getpixel(corner) == CLIP_PAD_RGB
    call = adapter.model.base_model.model.generate_calls[-1]
    assert call["kwargs"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 1024, "use_cache": True}
    assert call["images"].dtype == torch.float16 and call["image_sizes"] == (max(width, height),) * 2
    adapter.respond(doc, prompt, {"max_new_tokens": 3, "temperature": 0.5, "until": ["."]}, hooks.doc_to_visual)
    call = adapter.model.base_model.model.generate_calls[-1]
    assert call["kwargs"]["max_new_tokens"] == 3 and call["kwargs"]["do_sample"] is True
    assert call["kwargs"]["temperature"] == 0.5
    assert hooks.generation_note(TL_TASK, int(doc["mv_row"]))["truncated"] is True  # 3 tokens = the limit
    assert adapter.respond(doc, prompt, {"until": ["."]}, hooks.doc_to_visual) == "12"


def test_healthgpt_prompt_states_clip336_geometry(healthgpt_repo, hlora_file, fake_tokenizers):
    make_healthgpt(healthgpt_repo, hlora_file)
    doc = demo_docs(TL_TASK)[0]
    _, geometry = hooks.prompt_and_geometry(doc)
    assert geometry["rule"] == "clip336_pad" and geometry["canvas"] == [336, 336]


def test_healthgpt_unknown_template(healthgpt_repo, hlora_file, fake_tokenizers):
    with pytest.raises(AdapterConfigError, match="Did you mean 'phi4_instruct'"):
        make_healthgpt(healthgpt_repo, hlora_file, conv_template="phi4_instruc")


# ------------------------------------------------------------------------------------------------ MedDr
def test_meddr_generate_path_on_cpu(meddr_repo, fake_tokenizers):
    adapter = MedDrAdapter(repo_dir=str(meddr_repo), device="cpu")
    model = adapter.model
    assert model.load_kwargs == {"low_cpu_mem_usage": True, "torch_dtype": torch.float16, "path": "Sunanhe/MedDr_0401"}
    assert model.to_calls == [(("cpu",), {})] and model.img_context_token_id == 92546
    assert adapter.use_chat is False and settings.active_model().info["geometry"] == "fixed(448)"
    doc = demo_docs(DET_TASK)[0]
    prompt = hooks.doc_to_text(doc)
    assert adapter.respond(doc, prompt, {"until": []}, hooks.doc_to_visual) == "generate answer 3, 4"
    call = model.generate_calls[-1]
    assert tuple(call["pixel_values"].shape) == (1, 3, 448, 448) and call["pixel_values"].dtype == torch.float16
    assert call["kwargs"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 512}
    query = adapter.build_query(prompt)
    assert query.endswith(
        "<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 256 + "</img>\n" + prompt + "<|im_end|><|im_start|>assistant\n"
    )
    assert "internlm2-chat" in query
    assert call["input_ids"].shape[-1] == len(query.split())


def test_meddr_chat_path_matches_generate_path(meddr_repo, fake_tokenizers):
    adapter = MedDrAdapter(repo_dir=str(meddr_repo), device="cpu", dtype="float32")
    adapter.use_chat = True  # what a CUDA device selects; the fake chat() never moves tensors
    doc = demo_docs(DET_TASK)[0]
    prompt = hooks.doc_to_text(doc)
    assert adapter.respond(doc, prompt, {"max_new_tokens": 64, "until": []}, hooks.doc_to_visual) == "chat answer 1, 2"
    call = adapter.model.chat_calls[-1]
    assert call["query"] == adapter.build_query(prompt)
    assert call["generation_config"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 64}
    assert call["print_out"] is False and call["pixel_values"].dtype == torch.float32


def test_meddr_pad2square_checkpoint_changes_transform_and_geometry(meddr_repo, fake_tokenizers):
    init = meddr_repo / "src/model/internvl_chat/__init__.py"
    init.write_text(init.read_text().replace("PAD2SQUARE = False", "PAD2SQUARE = True"))
    adapter = MedDrAdapter(repo_dir=str(meddr_repo), device="cpu")
    assert adapter.pad2square is True and adapter.geometry == "clip336_pad:size=448"
    img = Image.new("RGB", (64, 16), (255, 255, 255))
    expected = (IMAGENET_PAD_RGB[0] / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert adapter.transform(img)[0, 5, 224].item() == pytest.approx(expected, abs=1e-5)


# ------------------------------------------------------------------------------------- HuatuoGPT-Vision
def test_huatuo_respond_list_output_sampling_and_image(huatuo_repo, tmp_path):
    adapter = make_huatuo(huatuo_repo, tmp_path)
    bot = adapter.bot
    assert bot.device == "cpu" and bot.model.to_calls == [(("cpu",), {})]
    info = settings.active_model().info
    assert info["geometry"] == "clip336_pad" and info["generation"]["seed"] == 1234
    doc = demo_docs(TL_TASK)[0]
    prompt = hooks.doc_to_text(doc)
    text = adapter.respond(doc, prompt, {"until": []}, hooks.doc_to_visual)
    assert text.startswith("The answer is ") and "second" not in text  # element [0] of the list
    assert bot.queries[-1] == special.huatuo_query(prompt) == f"<|user|>\n<image>\n{prompt}\n<|assistant|>\n"
    assert bot.gen_kwargs_seen[-1] == {
        "eos_token_id": 7,
        "pad_token_id": 7,
        "do_sample": True,
        "temperature": 0.2,
        "repetition_penalty": 1.2,
        "max_new_tokens": 512,
        "min_new_tokens": 1,
    }
    image = bot.images[-1]
    width, height = hooks.doc_to_visual(doc)[0].size
    assert image.size == (336, 336)
    assert image.getpixel((168, 2) if width > height else (2, 168)) == CLIP_PAD_RGB
    assert bot.model.generate_calls[-1]["images_dtype"] == torch.bfloat16
    adapter.respond(doc, prompt, {"max_new_tokens": 4096, "temperature": 0, "until": []}, hooks.doc_to_visual)
    assert bot.gen_kwargs_seen[-1]["max_new_tokens"] == 4096 and bot.gen_kwargs_seen[-1]["do_sample"] is False
    assert "temperature" not in bot.gen_kwargs_seen[-1]


def test_huatuo_seeds_each_request(huatuo_repo, tmp_path):
    adapter = make_huatuo(huatuo_repo, tmp_path)
    docs = demo_docs(TL_TASK)[:2]
    texts = [adapter.respond(d, hooks.doc_to_text(d), {"until": []}, hooks.doc_to_visual) for d in docs]
    again = adapter.respond(docs[0], hooks.doc_to_text(docs[0]), {"until": []}, hooks.doc_to_visual)
    calls = adapter.bot.model.generate_calls
    assert again == texts[0] and texts[0] != texts[1]
    assert calls[0]["seed"] == calls[2]["seed"] == special.request_seed(1234, docs[0]["mv_config"], docs[0]["mv_row"])
    other = make_huatuo(huatuo_repo, tmp_path, seed=7)
    assert other.respond(docs[0], hooks.doc_to_text(docs[0]), {"until": []}, hooks.doc_to_visual) != texts[0]


def test_huatuo_honours_dtype(huatuo_repo, tmp_path):
    adapter = make_huatuo(huatuo_repo, tmp_path, dtype="float32")
    doc = demo_docs(TL_TASK)[0]
    adapter.respond(doc, hooks.doc_to_text(doc), {"until": []}, hooks.doc_to_visual)
    model = adapter.bot.model
    assert ((), {"dtype": torch.float32}) in model.to_calls
    assert model.generate_calls[-1]["images_dtype"] == torch.float32


def test_generate_until_records_failures(huatuo_repo, tmp_path):
    adapter = make_huatuo(huatuo_repo, tmp_path)
    docs = demo_docs(TL_TASK)[:2]
    adapter.task_dict = {TL_TASK: {"test": docs}}

    def visual(doc: dict[str, Any]) -> list[Any]:
        if doc["mv_row"] == docs[1]["mv_row"]:
            raise OSError("unreadable slice")
        return hooks.doc_to_visual(doc)

    requests = [
        SimpleNamespace(args=(hooks.doc_to_text(d), {"until": []}, visual, i, TL_TASK, "test"))
        for i, d in enumerate(docs)
    ]
    out = adapter.generate_until(requests)
    assert out[0].startswith("The answer is ") and out[1] == ""
    assert "unreadable slice" in hooks.generation_note(TL_TASK, int(docs[1]["mv_row"]))["error"]


def test_manifest_entries_resolve():
    import importlib

    from medvision_adapters.manifests import ADAPTER_CLASSES

    for name, cls in [
        ("medvision_healthgpt", HealthGPTAdapter),
        ("medvision_meddr", MedDrAdapter),
        ("medvision_huatuogpt_vision", HuatuoGPTVisionAdapter),
    ]:
        module, _, attr = ADAPTER_CLASSES[name].rpartition(".")
        assert getattr(importlib.import_module(module), attr) is cls and cls.adapter_name == name


def test_huatuo_through_the_lmms_eval_cli(huatuo_repo, tmp_path):
    """The entry point resolves the adapter; records carry its identity, geometry and the list's first answer."""
    from e2e_utils import describe, read_records, run_lmms_eval, samples_files

    out = tmp_path / "run"
    model_args = f"pretrained={tmp_path / 'HuatuoGPT-Vision-34B'},device=cpu,seed=99"
    proc = run_lmms_eval(
        ["--model", "medvision_huatuogpt_vision", "--model_args", model_args, "--tasks", TL_TASK]
        + ["--limit", "2", "--output_path", str(out), "--log_samples"],
        {"MEDVISION_HUATUO_DIR": str(huatuo_repo)},
    )
    assert proc.returncode == 0, describe(proc)
    records = read_records(samples_files(out)[TL_TASK])
    assert len(records) == 2
    for record in records:
        assert record["model"]["adapter"] == "medvision_huatuogpt_vision"
        assert record["model"]["generation"]["seed"] == 99 and record["model"]["generation"]["temperature"] == 0.2
        assert record["geometry"]["rule"] == "clip336_pad" and record["geometry"]["canvas"] == [336, 336]
        assert record["response"].startswith("The answer is ") and record["generation_error"] is None
