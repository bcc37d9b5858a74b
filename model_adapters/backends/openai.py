"""OpenAI-compatible HTTP backend (e.g. `vllm serve`): bounded concurrency, our own retries, PNG data URLs.

Retries use exponential backoff with full jitter (a `Retry-After` header sets the floor) on 429, 408/409, 5xx,
timeouts, connection errors and malformed bodies, at most `max_retries` times per request; a request that
still fails becomes `GenResult("", error=...)` and the run goes on. Other 4xx answers are not retried.

The API key is read from the environment variable named by `api_key_env` and is scrubbed from every error
text and log line this module writes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from loguru import logger

from medvision_tasks.settings import env_value

from ..errors import AdapterConfigError
from . import GenRequest, GenResult
from ._common import Option, Sampling, data_url_part, read_options, read_sampling, to_chat_messages

DEFAULT_TIMEOUT_S = 180.0
CONNECT_TIMEOUT_S = 10.0  # an unreachable server fails fast whatever `timeout` is
OPENAI_OPTIONS: dict[str, Option] = {
    "base_url": Option("str", None, nullable=True),
    "api_key_env": Option("str", "OPENAI_API_KEY"),
    "served_name": Option("str", None, nullable=True),
    "num_concurrent": Option("int", 4, minimum=1),
    "max_retries": Option("int", 5, minimum=0),
    # seconds to wait for one answer (a hung connection frees its worker after this, then is retried);
    # raise it (timeout=600) for long chain-of-thought answers from a slow server
    "timeout": Option("float", DEFAULT_TIMEOUT_S, minimum=0.001),
    "png_compress_level": Option("int", 1, minimum=0, maximum=9),
}
BASE_URL_ENV = "OPENAI_API_BASE"
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
REDACTED = "***"


class MalformedResponseError(RuntimeError):
    """The server answered 2xx with a body that is not a chat completion (retryable)."""


class OpenAIBackend:
    """Client of one OpenAI-compatible server; `generate` runs up to `num_concurrent` requests at a time."""

    name = "openai"
    reports_each_result = True  # generate(..., on_result=) reports each request as it completes

    def __init__(
        self,
        pretrained: str | None,
        options: dict[str, Any] | None = None,
        *,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        opts = read_options(self.name, options, OPENAI_OPTIONS)
        base_url = opts["base_url"] or env_value(BASE_URL_ENV)
        if not base_url:
            raise AdapterConfigError(
                f"backend=openai: no server address; pass base_url=http://HOST:PORT/v1 in --model_args "
                f"or set {BASE_URL_ENV}."
            )
        key_env = opts["api_key_env"]
        api_key = env_value(key_env)
        if api_key is None:
            raise AdapterConfigError(
                f"backend=openai: environment variable {key_env} is not set; export it with the server's API key "
                f"(any value, e.g. EMPTY, for a server without authentication) or name another variable with "
                f"api_key_env=NAME."
            )
        self.served_name = opts["served_name"] or pretrained
        if not self.served_name:
            raise AdapterConfigError("backend=openai: no model name; pass served_name=NAME (or pretrained=NAME).")
        try:
            import openai
        except ModuleNotFoundError as exc:
            raise AdapterConfigError(
                "backend=openai needs the openai package: run `pip install lmms-eval-medvision[openai]`."
            ) from exc
        self._openai = openai
        self._secret = api_key
        self.base_url = base_url
        self.num_concurrent: int = opts["num_concurrent"]
        self.max_retries: int = opts["max_retries"]
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._image_part = data_url_part(opts["png_compress_level"])
        self._random = random.Random()
        self._lock = threading.Lock()
        self.retries = 0  # retries made by the last `generate`, for logs and tests
        import httpx  # an openai dependency

        timeout = httpx.Timeout(opts["timeout"], connect=min(CONNECT_TIMEOUT_S, opts["timeout"]))
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        logger.info(
            self.scrub(
                f"backend=openai: {base_url} model={self.served_name} num_concurrent={self.num_concurrent} "
                f"max_retries={self.max_retries} timeout={opts['timeout']}s (key from ${key_env})"
            )
        )

    def scrub(self, text: str) -> str:
        """`text` with the API key replaced by ***."""
        return text.replace(self._secret, REDACTED) if self._secret else text

    def generate(
        self, requests: list[GenRequest], on_result: Callable[[int, GenResult], None] | None = None
    ) -> list[GenResult]:
        """Results in request order; never raises for a failing request (AdapterConfigError for bad settings).

        `on_result(index, result)` runs in the calling thread as each request completes (the adapter's
        journal and progress bar), before the results of later completions are handed over."""
        sampling = [read_sampling(self.name, req.sampling) for req in requests]  # bad settings raise up front
        self.retries = 0
        if not requests:
            return []
        results: list[GenResult | None] = [None] * len(requests)
        pool = ThreadPoolExecutor(max_workers=min(self.num_concurrent, len(requests)), thread_name_prefix="openai")
        try:
            futures = {
                pool.submit(self._generate_one, req, values): i
                for i, (req, values) in enumerate(zip(requests, sampling))
            }
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                if on_result is not None:
                    on_result(index, results[index])
        except BaseException:  # Ctrl-C: do not start the queued requests
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        done = [r if r is not None else GenResult("", error="no result") for r in results]
        failed = sum(1 for r in done if r.error)
        if failed or self.retries:
            logger.warning(
                f"backend=openai: {len(requests)} request(s), {self.retries} retried attempt(s), "
                f"{failed} failed (recorded as failed responses)."
            )
        return done

    def _payload(self, req: GenRequest, values: Sampling) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.served_name,
            "messages": to_chat_messages(req.messages, self._image_part),
            "max_tokens": values.max_tokens,
        }
        if values.temperature is not None:  # absent: the server applies the checkpoint's generation config
            payload["temperature"] = values.temperature
        if values.top_p is not None:
            payload["top_p"] = values.top_p
        if values.seed is not None:
            payload["seed"] = values.seed
        if values.stop:
            payload["stop"] = values.stop
        extra = {}  # vLLM-server extensions, sent only when asked for
        if values.repetition_penalty is not None:
            extra["repetition_penalty"] = values.repetition_penalty
        if values.min_tokens is not None:
            extra["min_tokens"] = values.min_tokens
        if extra:
            payload["extra_body"] = extra
        return payload

    def _generate_one(self, req: GenRequest, values: Sampling) -> GenResult:
        try:
            payload = self._payload(req, values)
        except Exception as exc:
            return GenResult("", error=self.scrub(f"could not build the request: {type(exc).__name__}: {exc}"))
        reason = ""
        for attempt in range(self.max_retries + 1):
            try:
                completion = self._client.chat.completions.create(**payload)
                return self._result(completion)
            except Exception as exc:
                reason = self.scrub(self._describe(exc))
                if not self._retryable(exc):
                    logger.warning(f"backend=openai: request {req.key} failed, not retried: {reason}")
                    return GenResult("", error=reason)
                if attempt == self.max_retries:
                    break
                delay = self._delay(attempt, exc)
                with self._lock:
                    self.retries += 1
                logger.debug(
                    f"backend=openai: request {req.key} attempt {attempt + 1}: {reason}; retry in {delay:.2f}s"
                )
                time.sleep(delay)
        error = f"failed after {self.max_retries + 1} attempt(s): {reason}"
        logger.warning(f"backend=openai: request {req.key} {error}")
        return GenResult("", error=error)

    @staticmethod
    def _result(completion: Any) -> GenResult:
        if isinstance(completion, (str, bytes)):  # the client returns the text of a non-JSON body
            raise MalformedResponseError("the body is not JSON")
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise MalformedResponseError("the body has no choices")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None) if message is not None else None
        if message is None or not isinstance(text, (str, type(None))):
            raise MalformedResponseError("the first choice has no message")
        usage = getattr(completion, "usage", None)
        return GenResult(
            text=text or "",
            truncated=getattr(choices[0], "finish_reason", None) == "length",
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )

    def _retryable(self, exc: Exception) -> bool:
        errors = self._openai
        if isinstance(exc, (MalformedResponseError, json.JSONDecodeError, errors.APIResponseValidationError)):
            return True
        if isinstance(exc, errors.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, errors.APIStatusError):
            return exc.status_code in RETRY_STATUS or exc.status_code >= 500
        return False

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, self._openai.APIStatusError):
            return f"HTTP {exc.status_code} ({type(exc).__name__}): {exc}"
        if isinstance(exc, json.JSONDecodeError):
            return f"MalformedResponseError: the body is not valid JSON ({exc})"
        return f"{type(exc).__name__}: {exc}"

    def _delay(self, attempt: int, exc: Exception) -> float:
        """Full jitter: uniform(0, min(max, base * 2**attempt)); at least the server's Retry-After (capped)."""
        with self._lock:
            delay = self._random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            wait = None
            try:
                if headers.get("retry-after-ms") is not None:
                    wait = float(headers["retry-after-ms"]) / 1000.0
                elif headers.get("retry-after") is not None:
                    wait = float(headers["retry-after"])
            except (TypeError, ValueError):  # an HTTP date: ignore it
                wait = None
            if wait is not None and wait > 0:
                delay = max(delay, min(wait, self.backoff_max_s))
        return delay
