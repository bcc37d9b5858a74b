"""Benchmark: samples/s of the `hf` backend at batch 1, 4 and 16 with Qwen2.5-VL-7B dimensions (needs a GPU).

The model is random-initialised on the GPU from a local config with the published Qwen2.5-VL-7B dimensions
(no weights are downloaded), the processor uses the paper's limits (3,136 / 12,845,056 pixels) and a local
byte-level tokenizer (`tests/adapters/tiny_vlms.py`). Requests are the MedVision-V0 requests of the demo
(system prompt, CoT prompt, 512x512 image -> 504x504 = 324 image tokens). Random weights rarely emit an
end token, so every request generates exactly `--max-new-tokens` tokens and batch sizes compare fairly.

Run: `.venv/bin/python benchmarks/bench_hf_batching.py [--requests 32] [--max-new-tokens 64]`.
Not collected by pytest. Without a CUDA GPU it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Published Qwen2.5-VL-7B-Instruct dimensions.
QWEN2_5_VL_7B_TEXT = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    "vocab_size": 152064,
}
QWEN2_5_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "window_size": 112,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}


def demo_requests(count: int) -> list[Any]:
    """`count` MedVision-V0 requests over the demo subtasks (cycled), built by the plugin's own hooks."""
    from medvision_adapters.backends import GenRequest
    from medvision_adapters.profiles import PROFILES

    from medvision_tasks import hooks, settings

    profile = PROFILES["medvision_v0"]
    settings.register_active_model(
        {"adapter": profile.name, "geometry": profile.default_geometry}, dict(profile.task_defaults)
    )
    docs = []
    for stub_file in sorted((ROOT / "medvision_tasks" / "yaml" / "demo" / "stubs").glob("*.jsonl")):
        docs.extend(hooks.build_rows(json.loads(stub_file.read_text().splitlines()[0])))
    requests = []
    for index in range(count):
        doc = docs[index % len(docs)]
        messages = [
            {"role": "system", "content": [{"type": "text", "text": profile.system_prompt}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": hooks.doc_to_text(doc)},
                    {"type": "image", "image": hooks.doc_to_visual(doc)[0]},
                ],
            },
        ]
        requests.append(GenRequest(("bench", index), messages, {"temperature": 0.0, "until": []}))
    return requests


def build_backend(
    folder: Path,
    dtype: str,
    attn: str,
    device: str = "cuda",
    text_dims: dict[str, Any] = QWEN2_5_VL_7B_TEXT,
    vision_dims: dict[str, Any] = QWEN2_5_VL_7B_VISION,
) -> Any:
    """Processor + tokenizer saved to `folder`; the model (7B-sized by default) random-initialised on `device`."""
    import torch
    from medvision_adapters.backends.hf import HFBackend
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    sys.path.insert(0, str(ROOT / "tests" / "adapters"))
    from tiny_vlms import QWEN_TEMPLATE, build_tokenizer

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    special += ["<|image_pad|>", "<|video_pad|>"]
    tokenizer = build_tokenizer(
        special,
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        QWEN_TEMPLATE,
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special}
    Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_TEMPLATE,
    ).save_pretrained(folder)
    pad, eos = ids["<|endoftext|>"], ids["<|im_end|>"]
    text = dict(text_dims, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision_dims,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(getattr(torch, dtype))
    options = {
        "family": "qwen2_5_vl",
        "device": device,
        "dtype": dtype,
        "attn_implementation": attn,
        "processor_limits": {"min_pixels": 3136, "max_pixels": 12845056},
    }
    return HFBackend(str(folder), options, model=model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per batch size (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--attn", default="sdpa", help="attn_implementation (flash_attention_2 when installed)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_hf_batching: no CUDA GPU here; this benchmark needs one (about 20 GB for a 7B model in bf16).")
        print("Nothing was measured.")
        return 0
    import transformers

    requests = demo_requests(args.requests)
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        backend = build_backend(Path(tmp), args.dtype, args.attn)
        print(
            f"card: {torch.cuda.get_device_name(0)} | torch {torch.__version__} | transformers "
            f"{transformers.__version__} | dtype {args.dtype} | attention {args.attn}"
        )
        print(f"{args.requests} MedVision-V0 demo requests, {args.max_new_tokens} new tokens each")
        for request in requests:
            request.sampling["max_new_tokens"] = args.max_new_tokens
        for size in (int(s) for s in args.batch_sizes.split(",")):
            backend.generate(requests[:size])  # warm-up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            results = []
            for first in range(0, len(requests), size):
                results += backend.generate(requests[first : first + size])
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            failed = sum(1 for r in results if r.error)
            tokens = sum(r.completion_tokens or 0 for r in results)
            print(
                f"batch {size:>3}: {len(requests) / elapsed:7.2f} samples/s  {tokens / elapsed:8.1f} new tokens/s  "
                f"peak {torch.cuda.max_memory_allocated() / 2**30:5.1f} GiB  failed {failed}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
