#!/usr/bin/env python
"""Answer MedVision requests with a model that lives in its own environment (docs/reference.md §7.6, step 2 of 3).

The route for models whose pinned stack cannot share a process with lmms-eval (HealthGPT-L14, MedDr,
HuatuoGPT-Vision):

1. In the plugin environment, export prompts and images for the geometry the model's processor applies::

       medvision-eval export-requests --tasks medvision_tl medvision_ad --geometry clip336_pad --out req/

2. In the model's environment (this script needs only the standard library, Python >= 3.8)::

       python run_external.py req/requests.jsonl --generate my_model.py:generate --out responses.jsonl

   `generate(prompt, image_path, request) -> str` is yours: `prompt` is the exact MedVision prompt,
   `image_path` the absolute path of the rendered PNG, `request` the whole request line (task, config,
   row, geometry, ...). Load the model once (module level or on first call). A call that raises is
   written as an empty response with its error and the run goes on; `--resume` skips requests already
   answered in `--out`.

3. Back in the plugin environment, score (the geometry makes the records carry the declared one)::

       lmms-eval --model medvision_replay --model_args path=responses.jsonl,geometry=clip336_pad \\
           --tasks medvision_tl,medvision_ad --output_path out/ --log_samples

Output lines are `{"task", "config", "row", "response"}` (plus `"error"` for failed calls); medvision_replay
reads `config`, `row` and `response`.

Examples of `generate` (the layouts and defaults of the plugin's adapters, docs/reference.md §7.3; adjust the paths)::

    # --- HuatuoGPT-Vision-34B: FreedomIntelligence/HuatuoGPT-Vision @ e1a52dc, transformers 4.40.0 ---
    # Geometry clip336_pad. HuatuoChatbot pads to square with the CLIP mean and builds
    # "<|user|>\\n<image>\\n{prompt}\\n<|assistant|>\\n" itself; inference() returns a list.
    import hashlib, sys
    import torch
    sys.path.insert(0, "/path/to/HuatuoGPT-Vision")
    from cli import HuatuoChatbot
    BOT = HuatuoChatbot("/path/to/HuatuoGPT-Vision-34B", device="cuda:0")
    BOT.gen_kwargs.update(do_sample=True, temperature=0.2, repetition_penalty=1.2,
                          max_new_tokens=512, min_new_tokens=1)
    def generate(prompt, image_path, request):
        digest = hashlib.sha256(f"1234|{request['config']}|{request['row']}".encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "big"))  # the adapter's per-request seed
        answers = BOT.inference(prompt, [image_path])
        return answers[0] if isinstance(answers, list) else answers

    # --- MedDr: sunanhe/MedDr @ 48d7cd7, transformers 4.37.2, Python 3.9 ---
    # Geometry fixed(448) (config.pad2square False). chat() puts <img><IMG_CONTEXT>x256</img> before the prompt.
    import sys
    import torch
    from PIL import Image
    sys.path.insert(0, "/path/to/MedDr")
    from transformers import LlamaTokenizer
    from src.model.internvl_chat import InternVLChatModel
    from src.dataset.transforms import build_transform
    TOK = LlamaTokenizer.from_pretrained("Sunanhe/MedDr_0401")
    MODEL = InternVLChatModel.from_pretrained("Sunanhe/MedDr_0401", low_cpu_mem_usage=True,
                                              torch_dtype=torch.float16, device_map="auto").eval()
    MODEL.img_context_token_id = TOK.convert_tokens_to_ids("<IMG_CONTEXT>")
    SIZE = MODEL.config.force_image_size or MODEL.config.vision_config.image_size
    TRANSFORM = build_transform(is_train=False, input_size=SIZE, pad2square=MODEL.config.pad2square)
    def generate(prompt, image_path, request):
        pixels = TRANSFORM(Image.open(image_path).convert("RGB")).unsqueeze(0).to("cuda:0", torch.float16)
        return MODEL.chat(tokenizer=TOK, pixel_values=pixels, question=prompt,
                          generation_config=dict(num_beams=1, max_new_tokens=512, do_sample=False))

    # --- HealthGPT-L14: DCDmllm/HealthGPT @ c044a13 (phi-4 + CLIP-336 + H-LoRA) ---
    # Geometry clip336_pad. Build MODEL (fp16, on cuda:0) and TOK once as the repository's com_infer_phi4.sh
    # does (--dtype FP16 --hlora_r 32 --hlora_alpha 64 --hlora_nums 4 --vq_idx_nums 8192
    #  --instruct_template phi4_instruct --hlora_path com_hlora_weights_phi4.bin), then:
    import torch
    from PIL import Image
    from llava import conversation as conversation_lib
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token
    PROC = MODEL.get_vision_tower().image_processor
    def generate(prompt, image_path, request):
        conv = conversation_lib.conv_templates["phi4_instruct"].copy()
        conv.append_message(conv.roles[0], "<image>\\n" + prompt)
        conv.append_message(conv.roles[1], None)
        ids = tokenizer_image_token(conv.get_prompt(), TOK, IMAGE_TOKEN_INDEX, return_tensors="pt")
        image = Image.open(image_path).convert("RGB")
        side = max(image.size)  # pad to a centred square with the CLIP mean colour, int(m * 255)
        square = Image.new("RGB", (side, side), tuple(int(m * 255) for m in PROC.image_mean))
        square.paste(image, ((side - image.size[0]) // 2, (side - image.size[1]) // 2))
        pixels = PROC.preprocess(square, return_tensors="pt")["pixel_values"].to("cuda:0", torch.float16)
        with torch.inference_mode():
            out = MODEL.base_model.model.generate(ids.unsqueeze(0).to("cuda:0"), images=pixels,
                                                  image_sizes=square.size, do_sample=False, num_beams=1,
                                                  max_new_tokens=1024, use_cache=True)
        return TOK.decode(out[0], skip_special_tokens=True)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_generate(spec: str) -> Callable[[str, str, dict[str, Any]], str]:
    """`file.py:function` or `package.module:function` -> the function."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise SystemExit(f"--generate {spec!r}: expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"--generate: {path} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    function = getattr(module, name, None)
    if not callable(function):
        raise SystemExit(f"--generate: {target} has no function {name!r}")
    return function


def read_requests(path: Path) -> list[dict[str, Any]]:
    """Request lines of requests.jsonl, checked for the fields the runner needs."""
    requests = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            missing = {"task", "config", "row", "prompt", "image"} - set(item)
            if missing:
                raise SystemExit(f"{path}:{lineno}: missing {sorted(missing)}; was it written by export-requests?")
            requests.append(item)
    return requests


def answered(path: Path) -> set:
    """(task, config, row) already in an output file (for --resume)."""
    done = set()
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    item = json.loads(line)
                    done.add((item.get("task"), item["config"], int(item["row"])))
    return done


def run(requests_path: Path, generate: Callable[..., str], out: Path, resume: bool = False) -> tuple[int, int]:
    """Answer every request (skipping answered ones with `resume`); returns (answered now, failed)."""
    requests = read_requests(requests_path)
    done = answered(out) if resume else set()
    base = requests_path.resolve().parent
    count = failed = 0
    started = time.time()
    with open(out, "a" if resume else "w", encoding="utf-8") as fh:
        for request in requests:
            key = (request["task"], request["config"], int(request["row"]))
            if key in done:
                continue
            line: dict[str, Any] = {"task": key[0], "config": key[1], "row": key[2]}
            error: str | None = None
            try:
                response = generate(request["prompt"], str(base / request["image"]), request)
                if not isinstance(response, str):
                    raise TypeError(f"generate returned {type(response).__name__}, not str")
            except Exception as exc:  # one failing request must not end the run
                response, error = "", f"{type(exc).__name__}: {exc}"
                failed += 1
            line["response"] = response
            if error:
                line["error"] = error
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            count += 1
    rate = count / max(time.time() - started, 1e-9)
    print(f"{count} request(s) answered ({failed} failed), {rate:.2f}/s -> {out}", file=sys.stderr)
    return count, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("requests", type=Path, help="requests.jsonl written by medvision-eval export-requests")
    parser.add_argument("--generate", required=True, help="FILE.py:FUNCTION or MODULE:FUNCTION")
    parser.add_argument("--out", type=Path, required=True, help="responses JSONL for --model medvision_replay")
    parser.add_argument("--resume", action="store_true", help="append, skipping requests already in --out")
    args = parser.parse_args(argv)
    run(args.requests, load_generate(args.generate), args.out, resume=args.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
