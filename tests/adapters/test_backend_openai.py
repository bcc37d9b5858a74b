"""The openai backend against a real HTTP server on 127.0.0.1 that injects 429s, 5xx, timeouts and bad bodies.

The server: the first text of the last user message is the request's tag. `script[tag]` lists what the
server does on the tag's 1st, 2nd, ... hit; past the end of the list it answers "answer to <tag>". Faults:

    "429"        429 with Retry-After: 0            "429ra"     429 with Retry-After: 0.3
    "500"/"503"  server errors                      "timeout"   sleep `sleep_s` (past the client timeout)
    "notjson"    200 text/plain body                "badjson"   200 application/json that is not JSON
    "nochoices"  200 JSON without choices           "400"       400 bad request (not retried)
    "401echo"    401 whose body echoes the Authorization header (tests scrubbing)

The last test runs the real lmms-eval CLI (`medvision_qwen2_5_vl`, backend=openai) against this server; it is
skipped until the chat adapter (`medvision_adapters.chat`) exists.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import logging
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from e2e_utils import describe, read_records, run_lmms_eval, samples_files
from loguru import logger
from medvision_adapters.backends import GenRequest
from medvision_adapters.backends._common import png_bytes
from medvision_adapters.backends.openai import OpenAIBackend
from medvision_adapters.errors import AdapterConfigError
from PIL import Image

SECRET = "sk-test-SECRET123"
KEY_ENV = "MV_TEST_OPENAI_KEY"


def request_tag(body: dict[str, Any]) -> str:
    """First text of the last user message."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        for part in content:
            if part.get("type") == "text":
                return part["text"]
    return ""


def request_identity(body: dict[str, Any]) -> str:
    """The tag, plus a digest of the images when there are any (two samples may share a prompt text)."""
    urls = [
        part["image_url"]["url"]
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]
    tag = request_tag(body)
    return f"{tag}|{hashlib.sha1('|'.join(urls).encode()).hexdigest()[:12]}" if urls else tag


class FakeChatServer:
    """Records every request (body, headers, time) and tracks the most requests in flight at once."""

    def __init__(self, delay_s: float = 0.0, sleep_s: float = 1.0) -> None:
        self.script: dict[str, list[str]] = {}
        self.auto_script: list[list[str]] = []  # given to unscripted tags in order of first appearance
        self.answer_text: str | None = None  # answer for every tag (default "answer to <tag>")
        self.delay_s = delay_s
        self.sleep_s = sleep_s
        self.hits: dict[str, int] = defaultdict(int)
        self.hit_times: dict[str, list[float]] = defaultdict(list)
        self.bodies: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(payload).encode(), "application/json", headers)

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                tag = request_identity(body)
                with server.lock:
                    server.bodies.append(body)
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    hit = server.hits[tag]
                    server.hits[tag] += 1
                    server.hit_times[tag].append(time.monotonic())
                    if tag not in server.script and server.auto_script:
                        server.script[tag] = server.auto_script.pop(0)
                    steps = server.script.get(tag, [])
                fault = steps[hit] if hit < len(steps) else "ok"
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                if fault == "429":
                    return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                if fault == "429ra":
                    return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.3"})
                if fault in ("500", "503"):
                    return self._json(int(fault), {"error": {"message": "server error"}})
                if fault == "400":
                    return self._json(400, {"error": {"message": "bad request"}})
                if fault == "401echo":
                    seen = self.headers.get("Authorization", "")
                    return self._json(401, {"error": {"message": f"invalid credentials: {seen}"}})
                if fault == "timeout":
                    time.sleep(server.sleep_s)
                elif fault == "notjson":
                    return self._send(200, b"<html>gateway says hi</html>", "text/plain")
                elif fault == "badjson":
                    return self._send(200, b'{"choices": [', "application/json")
                elif fault == "nochoices":
                    return self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m"})
                if server.delay_s:
                    time.sleep(server.delay_s)
                finish = "length" if body.get("max_tokens", 100) < 5 else "stop"
                self._json(
                    200,
                    {
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": server.answer_text or f"answer to {request_tag(body)}",
                                },
                                "finish_reason": finish,
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                    },
                )

        return Handler


# --------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def server():
    with FakeChatServer() as srv:
        yield srv


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    return KEY_ENV


def make_backend(server: FakeChatServer, **options: Any) -> OpenAIBackend:
    opts = {"base_url": server.base_url, "api_key_env": KEY_ENV, "served_name": "served-x", "timeout": 0.5}
    opts.update(options)
    return OpenAIBackend("some/checkpoint", opts, backoff_base_s=0.01, backoff_max_s=0.05)


def text_request(tag: str, **sampling: Any) -> GenRequest:
    return GenRequest(("medvision_demo", 0), [{"role": "user", "content": [{"type": "text", "text": tag}]}], sampling)


SCRIPT = {
    "plain": ([], 1, "ok"),
    "one-429": (["429"], 2, "ok"),
    "two-5xx": (["500", "503"], 3, "ok"),
    "timeout": (["timeout"], 2, "ok"),
    "not-json": (["notjson"], 2, "ok"),
    "bad-json": (["badjson"], 2, "ok"),
    "no-choices": (["nochoices"], 2, "ok"),
    "always-500": (["500"] * 10, 3, "HTTP 500"),
    "always-timeout": (["timeout"] * 10, 3, "APITimeoutError"),
    "bad-request": (["400"], 1, "HTTP 400"),
    "auth-echo": (["401echo"], 1, "HTTP 401"),
}


def test_faults_end_answered_or_failed_within_retry_bound_and_key_never_leaks(
    server: FakeChatServer, key_env: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    server.sleep_s = 0.9  # client timeout is 0.5 s
    server.script = {tag: faults for tag, (faults, _, _) in SCRIPT.items()}
    loguru_lines: list[str] = []
    sink = logger.add(lambda message: loguru_lines.append(str(message)), level="DEBUG")
    caplog.set_level(logging.DEBUG)  # openai's and httpx's own loggers too
    try:
        backend = make_backend(server, max_retries=2, num_concurrent=4)
        results = backend.generate([text_request(tag, max_new_tokens=32) for tag in SCRIPT])
    finally:
        logger.remove(sink)

    for (tag, (_, hits, outcome)), result in zip(SCRIPT.items(), results):
        assert server.hits[tag] == hits, tag
        assert server.hits[tag] <= 2 + 1, f"{tag}: more than max_retries + 1 attempts"
        if outcome == "ok":
            assert (result.text, result.error) == (f"answer to {tag}", None), tag
            assert (result.prompt_tokens, result.completion_tokens) == (10, 3)
        else:
            assert result.text == "" and outcome in result.error, (tag, result.error)
    assert "failed after 3 attempt(s)" in results[list(SCRIPT).index("always-500")].error
    assert backend.retries == sum(
        hits - 1 for tag, (_, hits, _) in SCRIPT.items() if tag not in ("bad-request", "auth-echo")
    )

    # The key travelled only in the Authorization header ...
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}
    # ... and the 401 body that echoed it was scrubbed before it reached the result or a log.
    auth_error = results[list(SCRIPT).index("auth-echo")].error
    assert "invalid credentials: Bearer ***" in auth_error
    captured = capsys.readouterr()
    haystacks = {
        "results": repr(results),
        "loguru": "\n".join(loguru_lines),
        "logging": caplog.text + repr([r.__dict__ for r in caplog.records]),
        "stdout": captured.out,
        "stderr": captured.err,
    }
    assert "POST http://127.0.0.1" in haystacks["logging"], "httpx/openai debug logs were captured"
    for where, text in haystacks.items():
        assert SECRET not in text, f"API key leaked into {where}"
    assert "request ('medvision_demo', 0) failed after 3 attempt(s)" in haystacks["loguru"]


def test_concurrency_is_bounded(server: FakeChatServer, key_env: str) -> None:
    server.delay_s = 0.1
    backend = make_backend(server, num_concurrent=3)
    results = backend.generate([text_request(f"r{i}") for i in range(12)])
    assert [r.text for r in results] == [f"answer to r{i}" for i in range(12)], "results keep request order"
    assert 2 <= server.max_in_flight <= 3


def test_retry_after_sets_the_minimum_wait(server: FakeChatServer, key_env: str) -> None:
    server.script = {"slow-down": ["429ra"]}
    backend = OpenAIBackend(
        "m", {"base_url": server.base_url, "api_key_env": KEY_ENV}, backoff_base_s=0.001, backoff_max_s=5.0
    )
    [result] = backend.generate([text_request("slow-down")])
    assert result.text == "answer to slow-down"
    first, second = server.hit_times["slow-down"]
    assert second - first >= 0.28


def test_wire_payload_sampling_system_prompt_order_and_images(server: FakeChatServer, key_env: str) -> None:
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 256, (9, 7, 1), dtype=np.uint8), 3, axis=2)
    colour = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    grey_image, colour_image = Image.fromarray(grey, "RGB"), Image.fromarray(colour, "RGB")
    req_a = GenRequest(
        ("medvision_demo", 1),
        [
            {"role": "system", "content": [{"type": "text", "text": "You are an expert radiologist."}]},
            {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image", "image": grey_image}]},
        ],
        {"max_new_tokens": 4, "temperature": 0.0, "top_p": 0.95, "until": [], "seed": 3},
    )
    req_b = GenRequest(
        ("medvision_demo", 2),
        [{"role": "user", "content": [{"type": "image", "image": colour_image}, {"type": "text", "text": "B"}]}],
        {
            "max_new_tokens": 64,
            "temperature": 0.2,
            "do_sample": True,
            "until": ["</answer>"],
            "repetition_penalty": 1.2,
            "min_new_tokens": 1,
        },
    )
    req_c = text_request("C", max_new_tokens=16, temperature=0.7, do_sample=False, until="\n\n")
    results = make_backend(server).generate([req_a, req_b, req_c])
    assert [r.text for r in results] == ["answer to A", "answer to B", "answer to C"]
    assert [r.truncated for r in results] == [True, False, False]  # finish_reason "length" for max_tokens < 5

    bodies = {request_tag(b): b for b in server.bodies}
    a, b, c = bodies["A"], bodies["B"], bodies["C"]
    assert {k: a[k] for k in a if k != "messages"} == {
        "model": "served-x",
        "temperature": 0.0,
        "top_p": 0.95,
        "max_tokens": 4,
        "seed": 3,
    }
    assert {k: b[k] for k in b if k != "messages"} == {
        "model": "served-x",
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["</answer>"],
        "repetition_penalty": 1.2,
        "min_tokens": 1,
    }
    assert {k: c[k] for k in c if k != "messages"} == {
        "model": "served-x",
        "temperature": 0.0,
        "max_tokens": 16,
        "stop": ["\n\n"],
    }
    assert a["messages"][0] == {"role": "system", "content": "You are an expert radiologist."}
    assert [p["type"] for p in a["messages"][1]["content"]] == ["text", "image_url"]
    assert [p["type"] for p in b["messages"][0]["content"]] == ["image_url", "text"]
    assert c["messages"] == [{"role": "user", "content": "C"}]

    def decode(part: dict[str, Any]) -> Image.Image:
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))

    grey_sent, colour_sent = decode(a["messages"][1]["content"][1]), decode(b["messages"][0]["content"][0])
    assert grey_sent.mode == "L" and colour_sent.mode == "RGB"
    assert np.array_equal(np.asarray(grey_sent.convert("RGB")), grey)
    assert np.array_equal(np.asarray(colour_sent.convert("RGB")), colour)


def test_png_encoding_is_lossless_for_every_mode() -> None:
    rng = np.random.default_rng(1)
    for image in (
        Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L"),
        Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA"),
        Image.fromarray(np.repeat(rng.integers(0, 256, (6, 5, 1), dtype=np.uint8), 3, axis=2), "RGB"),
    ):
        for level in (0, 1, 9):
            decoded = Image.open(io.BytesIO(png_bytes(image, level)))
            assert np.array_equal(np.asarray(decoded.convert(image.mode)), np.asarray(image))


def test_configuration_errors(server: FakeChatServer, key_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AdapterConfigError, match=r"unknown option 'num_concurency'. Did you mean 'num_concurrent'\?"):
        make_backend(server, num_concurency=2)
    with pytest.raises(AdapterConfigError, match=r"environment variable MV_MISSING_KEY is not set; export it"):
        make_backend(server, api_key_env="MV_MISSING_KEY")
    with pytest.raises(AdapterConfigError, match=r"no server address; pass base_url=.* or set OPENAI_API_BASE"):
        OpenAIBackend("m", {"api_key_env": KEY_ENV})
    with pytest.raises(AdapterConfigError, match=r"png_compress_level=12.* above the maximum 9"):
        make_backend(server, png_compress_level=12)
    monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    backend = OpenAIBackend("served/by-default", {})
    assert backend.base_url == server.base_url and backend.served_name == "served/by-default"
    assert backend.generate([text_request("env")])[0].text == "answer to env"
    assert server.bodies[-1]["model"] == "served/by-default"
    with pytest.raises(AdapterConfigError, match=r"num_beams=2 \(beam search\) is not supported"):
        backend.generate([text_request("beams", num_beams=2)])


@pytest.mark.e2e
@pytest.mark.skipif(
    importlib.util.find_spec("medvision_adapters.chat") is None, reason="the chat adapter (model_adapters/chat.py)"
)
def test_lmms_eval_cli_against_the_fake_server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--model medvision_qwen2_5_vl with backend=openai on medvision_demo (--limit 2), with injected faults."""
    answer = "0.250000, 0.250000, 0.750000, 0.750000"
    with FakeChatServer(sleep_s=4.0) as srv:
        srv.answer_text = answer
        # In order of first appearance: recovered 429, recovered 500, recovered timeout, a request that never
        # succeeds (-> failure), a recovered malformed body. Everything else answers at once.
        srv.auto_script = [["429"], ["500"], ["timeout"], ["500"] * 10, ["notjson"]]
        out = tmp_path / "out"
        model_args = f"backend=openai,base_url={srv.base_url},served_name=x,max_retries=2,timeout=2,num_concurrent=4"
        proc = run_lmms_eval(
            [
                "--model",
                "medvision_qwen2_5_vl",
                "--model_args",
                model_args,
                "--batch_size",
                "8",
                "--tasks",
                "medvision_demo",
                "--limit",
                "2",
                "--output_path",
                str(out),
                "--log_samples",
            ],
            {"OPENAI_API_KEY": SECRET},
            timeout=600,
        )
        assert proc.returncode == 0, describe(proc)
        bodies, hits, script = list(srv.bodies), dict(srv.hits), dict(srv.script)

    files = samples_files(out)
    assert len(files) == 8, sorted(files)
    records = [rec for path in files.values() for rec in read_records(path)]
    assert len(records) == 16 and len(hits) == 16
    failed = [r for r in records if r["generation_error"]]
    answered = [r for r in records if not r["generation_error"]]
    assert (
        len(failed) == 1
        and failed[0]["response"] == ""
        and "failed after 3 attempt(s)" in failed[0]["generation_error"]
    )
    assert all(r["response"] == answer for r in answered)
    never_ok = [tag for tag, steps in script.items() if steps == ["500"] * 10]
    assert len(never_ok) == 1 and hits[never_ok[0]] == 2 + 1, "max_retries=2: three attempts, then a failure"
    assert max(hits.values()) <= 2 + 1
    assert 1 < srv.max_in_flight <= 4, "num_concurrent bounds the requests in flight"
    assert all(b["model"] == "x" for b in bodies)
    for body in bodies:
        parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))).load()

    leaks = [str(p) for p in out.rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]
    assert not leaks, f"API key in output files: {leaks}"
    assert SECRET not in proc.stdout and SECRET not in proc.stderr, "API key in the CLI logs"
