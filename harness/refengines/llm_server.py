"""The harness's reference LLM server: a small seeded causal language model behind a real
local HTTP server that speaks the OpenAI completions protocol (D16 `llm.serving` dry run
and tests).

The model (`TinyCausalLM`) is GPT-like: token and learned position embeddings, pre-norm
transformer blocks (causal multi-head self-attention through
`torch.nn.functional.scaled_dot_product_attention`, GELU feed-forward of 4x the width),
a final LayerNorm and an LM head tied to the token embedding; built on the CPU in FP32
from a seed (random weights: what it writes is gibberish, the serving work is real).
Generation keeps a key/value cache: one forward pass over the prompt (prefill), then one
per output token (decode). The tokenizer is one token per character of printable ASCII
and the newline (any other character reads as `?`). There is no end-of-sequence token, so
every answer is exactly `max_tokens` long (`finish_reason: "length"`); greedy at
temperature 0, else sampled with a generator seeded by the request's `seed` (or the
server's seed and the request's number).

The server (`ReferenceLlmServer`, a context manager serving in a thread) listens on
127.0.0.1 on a free port
(HTTP/1.1, keep-alive, TCP_NODELAY, one thread per connection; the model's steps are serialised by a
lock, so concurrent requests interleave token by token):

- `GET /v1/models`: `{"object": "list", "data": [{"id": <model name>, ...}]}`;
- `POST /v1/completions` (`prompt`) and `POST /v1/chat/completions` (`messages`, each
  message rendered as `<role>: <content>` on its own line, then `assistant: `), with
  `max_tokens`, `temperature`, `seed`, `stream` and `stream_options.include_usage`;
- streamed answers are Server-Sent Events in chunked transfer encoding, one event per
  HTTP chunk: `data: {...}\\n\\n` per output token (chat: first a role-only delta; a
  final delta carrying `finish_reason`), then with `include_usage` a chunk with
  `"choices": []` and `usage`, then `data: [DONE]\\n\\n`;
- a non-streamed answer is one JSON body with `choices` and `usage`;
- a malformed request gets 400 with an OpenAI-style `{"error": {...}}` body, as does a
  prompt plus `max_tokens` longer than the model's context.

`ServerProcess` runs it in a process of its own (`python -m harness.refengines.llm_server
--seed N`, one torch thread), so that the client's clock never waits for the server's
Python code (the GIL): what the probe's dry run and the tests drive. The child prints one
JSON line (`{"url": ..., "describe": {...}}`) once it listens, and serves until it is
terminated or its stdin (a pipe from the parent) closes, so that it never outlives the
harness.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 tokens
UNKNOWN = ALPHABET.index("?")
MAX_BODY_BYTES = 8 << 20
Cache = list[tuple[Tensor, Tensor]]


def encode(text: str) -> list[int]:
    index = {c: k for k, c in enumerate(ALPHABET)}
    return [index.get(c, UNKNOWN) for c in text]


def decode(tokens: list[int]) -> str:
    return "".join(ALPHABET[t] for t in tokens)


@dataclass(frozen=True)
class LmConfig:
    vocab: int = len(ALPHABET)
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    context: int = 2048


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden)
        )

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(h, dim=-1)
        q, k, v = (z.view(b, t, self.heads, h // self.heads).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        # prefill: causal over the prompt; decode: one new query sees the whole cache
        a = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and t > 1)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, h))
        x = x + self.mlp(self.norm2(x))
        return x, (k, v)


class TinyCausalLM(nn.Module):
    """A GPT-like decoder (module doc); `forward(ids, cache)` -> (logits, new cache)."""

    position_ids: Tensor

    def __init__(self, cfg: LmConfig) -> None:
        super().__init__()
        if cfg.hidden % cfg.heads:
            raise ValueError(f"hidden {cfg.hidden} is not a multiple of heads {cfg.heads}")
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.positions = nn.Embedding(cfg.context, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg.hidden, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        self.head.weight = self.tokens.weight  # tied
        self.register_buffer("position_ids", torch.arange(cfg.context), persistent=False)

    def forward(self, ids: Tensor, cache: Cache | None = None) -> tuple[Tensor, Cache]:
        start = 0 if cache is None else cache[0][0].shape[2]
        positions = self.position_ids[start : start + ids.shape[1]]
        x = self.tokens(ids) + self.positions(positions)
        new: Cache = []
        for k, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[k])
            new.append(kv)
        return self.head(self.norm(x)), new


def build(seed: int, cfg: LmConfig) -> TinyCausalLM:
    """The model in FP32 on the CPU, eval mode, weights drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyCausalLM(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class RequestError(Exception):
    """A request the server refuses with 400 (its text is the message)."""


@dataclass
class Generation:
    prompt_tokens: int
    max_tokens: int
    temperature: float
    seed: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReferenceLlmServer

    def setup(self) -> None:
        super().setup()
        # each SSE event leaves at once (no Nagle wait for the client's delayed ACK)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(
            status,
            {"error": {"message": message, "type": "invalid_request_error", "code": status}},
        )

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/v1/models", "/v1/models/"):
            model = {"id": self.server.model_name, "object": "model", "owned_by": "harness"}
            self._json(200, {"object": "list", "data": [model]})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/completions", "/v1/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        chat = path.endswith("/chat/completions")
        try:
            size = int(self.headers.get("Content-Length", "-1"))
            if not 0 <= size <= MAX_BODY_BYTES:
                raise RequestError("a JSON body with a Content-Length is expected")
            body = json.loads(self.rfile.read(size))
            if not isinstance(body, dict):
                raise RequestError("the body must be a JSON object")
            prompt = _chat_prompt(body) if chat else _completion_prompt(body)
            gen = self.server.plan(body, prompt)
        except (RequestError, ValueError) as error:
            self._error(400, str(error))
            return
        if body.get("stream"):
            options = body.get("stream_options") or {}
            usage = isinstance(options, dict) and bool(options.get("include_usage"))
            self._stream(prompt, gen, chat, usage)
        else:
            self._whole(prompt, gen, chat)

    def _whole(self, prompt: list[int], gen: Generation, chat: bool) -> None:
        tokens = list(self.server.generate(prompt, gen))
        text = decode(tokens)
        ident, created = self.server.ids(chat)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        self._json(
            200,
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": self.server.model_name,
                "choices": [choice],
                "usage": _usage(gen.prompt_tokens, len(tokens)),
            },
        )

    def _chunk(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _stream(self, prompt: list[int], gen: Generation, chat: bool, usage: bool) -> None:
        ident, created = self.server.ids(chat)
        kind = "chat.completion.chunk" if chat else "text_completion"
        model = self.server.model_name

        def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> str:
            obj = {"id": ident, "object": kind, "created": created, "model": model}
            obj["choices"] = choices
            obj.update(extra or {})
            return json.dumps(obj)

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        count = 0
        try:
            if chat:
                delta = {"role": "assistant", "content": ""}
                self._chunk(event([{"index": 0, "delta": delta, "finish_reason": None}]))
            for token in self.server.generate(prompt, gen):
                count += 1
                text = ALPHABET[token]
                last = count == gen.max_tokens
                if chat:
                    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
                else:
                    finish = "length" if last else None
                    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
                self._chunk(event([choice]))
            if chat:
                self._chunk(event([{"index": 0, "delta": {}, "finish_reason": "length"}]))
            if usage:
                self._chunk(event([], {"usage": _usage(gen.prompt_tokens, count)}))
            self._chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: stop generating


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion_prompt(body: dict[str, Any]) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("`prompt` must be a string")
    return encode(prompt)


def _chat_prompt(body: dict[str, Any]) -> list[int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list")
    lines = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise RequestError("every message needs a string `content`")
        lines.append(f"{m.get('role', 'user')}: {m['content']}")
    return encode("\n".join(lines) + "\nassistant: ")


class ReferenceLlmServer(ThreadingHTTPServer):
    """`TinyCausalLM` behind the OpenAI protocol on 127.0.0.1 (module doc); serves in a
    daemon thread between `__enter__` and `__exit__`."""

    daemon_threads = True
    request_queue_size = 1024
    max_tokens_limit = 4096

    def __init__(self, seed: int = 0, cfg: LmConfig | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seed = seed
        self.cfg = cfg or LmConfig()
        self.model = build(seed, self.cfg)
        self.model_name = f"harness-tiny-gpt-L{self.cfg.layers}-H{self.cfg.hidden}"
        self.lock = threading.Lock()
        self._count = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())  # the tied head counted once

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "harness reference LLM server (harness.refengines.llm_server): a seeded "
            "GPT-like causal LM with a key/value cache behind an OpenAI-compatible HTTP/1.1 "
            "server (SSE streaming, usage in the final chunk)",
            "model": self.model_name,
            "config": asdict(self.cfg),
            "parameters": self.parameters(),
            "seed": self.seed,
            "tokenizer": "one token per printable ASCII character or newline",
            "torch": torch.__version__,
            "device": "cpu",
            "listens": "127.0.0.1 (loopback), a free port",
        }

    def ids(self, chat: bool) -> tuple[str, int]:
        with self.lock:
            self._count += 1
            n = self._count
        return f"{'chatcmpl' if chat else 'cmpl'}-{n}", int(time.time())

    def plan(self, body: dict[str, Any], prompt: list[int]) -> Generation:
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 16))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("`max_tokens` must be an integer >= 1")
        if max_tokens > self.max_tokens_limit:
            raise RequestError(f"`max_tokens` is at most {self.max_tokens_limit}")
        if not prompt:
            raise RequestError("the prompt is empty")
        if len(prompt) + max_tokens > self.cfg.context:
            raise RequestError(
                f"this model's maximum context length is {self.cfg.context} tokens; the "
                f"prompt has {len(prompt)} and max_tokens asks for {max_tokens}"
            )
        temperature = body.get("temperature", 1.0)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise RequestError("`temperature` must be a number")
        if not math.isfinite(temperature) or temperature < 0:
            raise RequestError("`temperature` must be >= 0")
        seed = body.get("seed")
        if seed is None:
            with self.lock:
                self._count += 1
                seed = self.seed * 1_000_003 + self._count
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RequestError("`seed` must be an integer")
        return Generation(len(prompt), max_tokens, float(temperature), seed)

    def generate(self, prompt: list[int], gen: Generation) -> Any:
        """Yields the output tokens one by one, each as soon as its step is done."""
        generator = torch.Generator().manual_seed(gen.seed)
        ids = torch.tensor([prompt])
        cache: Cache | None = None
        for _ in range(gen.max_tokens):
            with self.lock, torch.inference_mode():
                logits, cache = self.model(ids, cache)
                last = logits[0, -1]
                if gen.temperature == 0:
                    token = int(last.argmax())
                else:
                    probs = torch.softmax(last / gen.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=generator))
            ids = torch.tensor([[token]])
            yield token

    def __enter__(self) -> ReferenceLlmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class ServerProcess:
    """`ReferenceLlmServer` in a child process (module doc), a context manager: `url` and
    `describe()` once entered; the child is terminated (then killed) on exit."""

    def __init__(
        self, seed: int = 0, cfg: LmConfig | None = None, start_timeout_s: float = 120.0
    ) -> None:
        self.seed = seed
        self.cfg = cfg or LmConfig()
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self._describe: dict[str, Any] = {}
        self._proc: subprocess.Popen[str] | None = None

    def describe(self) -> dict[str, Any]:
        return {**self._describe, "process": "a child process of the harness (one torch thread)"}

    @property
    def model_name(self) -> str:
        return str(self._describe.get("model", ""))

    def __enter__(self) -> ServerProcess:
        argv = [
            sys.executable,
            "-m",
            "harness.refengines.llm_server",
            "--seed",
            str(self.seed),
            "--hidden",
            str(self.cfg.hidden),
            "--layers",
            str(self.cfg.layers),
            "--heads",
            str(self.cfg.heads),
            "--context",
            str(self.cfg.context),
        ]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _first_line(self._proc, self.start_timeout_s)
        try:
            ready = json.loads(line)
            self.url = str(ready["url"])
            self._describe = dict(ready["describe"])
        except (ValueError, KeyError, TypeError):
            self.__exit__(None, None, None)
            raise RuntimeError(
                f"the reference LLM server did not start: {line.strip()!r}"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _first_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The child's first stdout line (its stderr when it died first); "" on a timeout."""
    out: list[str] = []
    reader = threading.Thread(
        target=lambda: out.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(timeout_s)
    if out and out[0]:
        return out[0]
    if proc.poll() is not None and proc.stderr is not None:
        return proc.stderr.read()[-2000:]
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the harness's reference LLM server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=LmConfig.hidden)
    parser.add_argument("--layers", type=int, default=LmConfig.layers)
    parser.add_argument("--heads", type=int, default=LmConfig.heads)
    parser.add_argument("--context", type=int, default=LmConfig.context)
    ns = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = LmConfig(hidden=ns.hidden, layers=ns.layers, heads=ns.heads, context=ns.context)
    server = ReferenceLlmServer(ns.seed, cfg)

    def orphaned() -> None:  # the parent's end of stdin closes when it goes, however it goes
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    print(json.dumps({"url": server.url, "describe": server.describe()}), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
