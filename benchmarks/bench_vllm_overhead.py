"""Time the `vllm` backend against raw `LLM.chat` on the same requests (not run in CI).

    python benchmarks/bench_vllm_overhead.py --model Qwen/Qwen2.5-VL-7B-Instruct --n 64 --max-new-tokens 32

Needs vLLM, a CUDA GPU and the checkpoint's weights (local folder or hub cache); without them it prints why
and exits 0. One engine serves all three timings, each the median of `--repeats` runs:

* raw: `LLM.chat` on pre-built conversations (PIL image parts) with one shared `SamplingParams`;
* backend: `VLLMBackend.generate` on the same GenRequests (message conversion + per-request SamplingParams);
* raw+png: `LLM.chat` with PNG data-URL images encoded inside the timing (the cost the PIL path avoids).

Images are 512×512 grey slices rendered as RGB, like MedVision's. Output names the card and the versions.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from typing import Any

import numpy as np
from medvision_adapters.backends import GenRequest
from medvision_adapters.backends._common import data_url_part, to_chat_messages
from PIL import Image

PROMPT = (
    "Task: estimate the major and minor axis lengths of the tumour in this CT slice, in millimeters. "
    "The image is {size}x{size} pixels and each pixel is 0.711 x 0.711 mm. Sample {index}. "
    "Answer with two numbers separated by a comma."
)


def synthetic_slice(index: int, size: int = 512) -> Image.Image:
    """A smooth grey 'slice' with a bright ellipse, different per index, as 3-channel RGB."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rng = np.random.default_rng(index)
    cy, cx, ry, rx = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)
    body = 80 + 60 * np.sin(6 * xx + index) * np.cos(5 * yy)
    lesion = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0) * 90
    grey = np.clip(body + lesion, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), mode="RGB")


def build_requests(n: int, max_new_tokens: int) -> list[GenRequest]:
    sampling = {"max_new_tokens": max_new_tokens, "temperature": 0.0, "top_p": 0.95, "until": []}
    return [
        GenRequest(
            key=("bench", i),
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT.format(size=512, index=i)},
                        {"type": "image", "image": synthetic_slice(i)},
                    ],
                }
            ],
            sampling=dict(sampling),
        )
        for i in range(n)
    ]


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall time of `fn()` over `repeats` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen2.5-VL-7B-Instruct")
    parser.add_argument("--n", type=int, default=64, help="requests per timing")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    args = parser.parse_args(argv)

    if importlib.util.find_spec("vllm") is None:
        print("bench_vllm_overhead: vLLM is not installed (pip install lmms-eval-medvision[vllm]); nothing to time.")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("bench_vllm_overhead: no CUDA GPU is visible; nothing to time.")
        return 0

    from medvision_adapters.backends.vllm import VLLMBackend

    options: dict[str, Any] = {
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    if "qwen" in args.model.lower():
        options["mm_processor_kwargs"] = {"min_pixels": 3136, "max_pixels": 12845056}
    try:
        backend = VLLMBackend(args.model, options)
    except Exception as exc:  # weights missing, offline hub, unsupported architecture ...
        print(f"bench_vllm_overhead: could not build a vLLM engine for {args.model}: {type(exc).__name__}: {exc}")
        return 0

    import vllm

    requests = build_requests(args.n, args.max_new_tokens)
    shared = vllm.SamplingParams(n=1, temperature=0.0, top_p=0.95, max_tokens=args.max_new_tokens)

    def pil_part(image: Image.Image) -> dict[str, Any]:
        return {"type": "image_pil", "image_pil": image}

    conversations = [to_chat_messages(r.messages, pil_part) for r in requests]
    png_part = data_url_part(1)

    def run_raw() -> list[str]:
        return [o.outputs[0].text for o in backend.llm.chat(conversations, sampling_params=shared)]

    def run_backend() -> list[str]:
        return [r.text for r in backend.generate(requests)]

    def run_raw_png() -> list[str]:
        convs = [to_chat_messages(r.messages, png_part) for r in requests]
        return [o.outputs[0].text for o in backend.llm.chat(convs, sampling_params=shared)]

    backend.generate(requests[: min(4, len(requests))])  # warm-up: compile, caches
    t_raw, raw_texts = timed(run_raw, args.repeats)
    t_backend, backend_texts = timed(run_backend, args.repeats)
    t_png, _ = timed(run_raw_png, args.repeats)

    same = sum(a == b for a, b in zip(raw_texts, backend_texts))
    print(f"card: {torch.cuda.get_device_name(0)}; vllm {backend.vllm_version}; torch {torch.__version__}")
    print(f"model: {args.model}; n={args.n}; max_new_tokens={args.max_new_tokens}; median of {args.repeats}")
    print(f"raw LLM.chat (PIL parts):      {t_raw:8.3f} s  {args.n / t_raw:8.2f} samples/s")
    print(f"VLLMBackend.generate:          {t_backend:8.3f} s  {args.n / t_backend:8.2f} samples/s")
    print(f"raw LLM.chat (PNG data URLs):  {t_png:8.3f} s  {args.n / t_png:8.2f} samples/s")
    overhead = 100 * (t_backend - t_raw) / t_raw
    print(f"backend overhead vs raw: {overhead:+.1f} %; greedy outputs identical: {same}/{args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
