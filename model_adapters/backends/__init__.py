"""Backends turn chat messages plus per-request sampling parameters into text.

The contract every backend implements (hf, vllm, openai). Messages are built once per request by the
adapter (profile: system prompt, image placement) in this neutral form:

    [{"role": "system"|"user"|"assistant",
      "content": [{"type": "text", "text": str} | {"type": "image", "image": PIL.Image.Image}]}]

Each backend converts them to its own wire form. Backends import their heavy libraries inside
`__init__`, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class GenRequest:
    """One generation request; `sampling` holds only keys the backend must honour."""

    key: tuple[str, int]  # (task, mv_row): for logs and per-request seeds
    messages: list[dict[str, Any]]
    # max_new_tokens (int), temperature (float), top_p (float|None), do_sample (bool), until (list[str]),
    # seed (int|None), plus family extras such as repetition_penalty / min_new_tokens / num_beams.
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenResult:
    """Text of one request; `error` set (and text "") when the request failed after retries."""

    text: str
    truncated: bool = False
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Backend(Protocol):
    name: str

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Results in request order; a failing request yields GenResult("", error=...) instead of raising."""
        ...
