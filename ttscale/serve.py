"""`ttscale serve`: test-time scaling behind the OpenAI chat-completions API.

Any OpenAI client or agent framework gets best-of-N, particle filtering, ... unchanged: the strategy and
budget ride in an extra body field, `"ttscale": {"strategy", "budget", "verifier", "deadline_s", ...}`, and
the server's own defaults (`--strategy`, `--budget`) serve clients that cannot send it. `stream=true` is
answered with SSE chunks (ttscale/serve_stream.py).
Concurrent requests go through the engine's async loop, so they share backend batches; a client that
disconnects cancels its work within one round. Every request is validated (names included) before any
work; every error, routing and framework ones too, comes back as an OpenAI-style JSON body with a 4xx.

The guard (API key, body limit) is a pure ASGI middleware, not `@app.middleware("http")`: Starlette's
BaseHTTPMiddleware hides the client's disconnect from the endpoint (the same bug as vLLM #10087), and it
lets the body be counted while it is read, so a chunked upload over the limit is refused at the limit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from typing import Any

from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttscale.engine import Engine
from ttscale.errors import TTScaleError
from ttscale.serve_stream import Chunks, stream_reply

# Standard OpenAI chat fields clients send that we accept (and mostly ignore); anything else is refused.
IGNORED_OPENAI_FIELDS = {"frequency_penalty", "presence_penalty", "user", "logit_bias", "response_format",
                         "store", "metadata", "parallel_tool_calls", "service_tier"}
MODEL_ALIAS = "ttscale"  # a request may always name the model so, whatever --served-model-name says


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant|developer)$")
    content: str
    name: str | None = None


Count = Annotated[StrictInt, Field(ge=1)]  # booleans are not counts: `budget: true` is refused
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # numbers, not "0.7" or true


class TTScaleOptions(BaseModel):
    """The `ttscale` body field. Fields beyond these are the strategy's own options (`ttscale strategies`
    lists them), checked against its options class before any work."""

    model_config = ConfigDict(extra="allow")
    strategy: str = "best_of_n"
    budget: Count = 4
    verifier: str | None = None
    deadline_s: Annotated[Number, Field(gt=0)] | None = None
    aggregate: str | None = None
    beam_width: Count | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")  # vLLM's continuous_usage_stats, OpenAI's include_obfuscation
    include_usage: StrictBool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: Annotated[Number, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Number, Field(gt=0, le=1)] | None = None
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    seed: Annotated[StrictInt, Field(ge=0, lt=2**63)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=1)] | None = None
    stop: str | list[str] | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    ttscale: TTScaleOptions = Field(default_factory=TTScaleOptions)


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})


def strategy_options(opts: TTScaleOptions) -> dict[str, Any]:
    """The strategy's options from the request, checked before any work (TTScaleError names the choices):
    unknown strategy, option, verifier or aggregation. `verifier` reaches a strategy that scores whole
    candidates (declares `scorer`, no `verifier`) as its scorer."""
    from ttscale.scoring import scorers
    from ttscale.strategies import strategies
    from ttscale.strategies.aggregate import check_aggregation
    from ttscale.strategies.options import fields_of, options_class, parse_options

    strategies.get(opts.strategy)
    cls = options_class(opts.strategy)
    declared = fields_of(cls) if cls is not None else {}
    given: dict[str, Any] = dict(opts.model_extra or {})
    given.update({k: v for k, v in (("aggregate", opts.aggregate), ("beam_width", opts.beam_width)) if v is not None})
    if opts.verifier is not None:
        given["scorer" if "scorer" in declared and "verifier" not in declared else "verifier"] = opts.verifier
    parse_options(opts.strategy, cls, given)
    for key in ("verifier", "scorer"):
        if given.get(key) not in (None, "", "none", "logprob"):
            scorers.get(str(given[key]))
    if opts.aggregate is not None:
        check_aggregation(opts.aggregate)
    return given


class Guard:
    """Pure ASGI middleware: the API key on every route but /health, and the body limit enforced while
    the body is read (a request that passes is replayed to the app with the original `receive` behind
    it, so the endpoint still sees the client's disconnect)."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                await error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                            "authentication_error")(scope, receive, send)
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await error(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        end = asyncio.get_running_loop().time() + BODY_TIMEOUT_S
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, end - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                await error(408, f"request body not received within {BODY_TIMEOUT_S:g} s")(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await error(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def check_defaults(strategy: str, budget: int, max_budget: int) -> None:
    """The server's default strategy and budget, checked before any model loads (TTScaleError)."""
    from ttscale.engine import check_budget

    check_budget(budget)
    if budget > max_budget:
        raise TTScaleError(f"--budget {budget} is over --max-budget {max_budget}",
                           f"pass --budget {max_budget} or less, or raise --max-budget")
    strategy_options(TTScaleOptions(strategy=strategy, budget=budget))


def reply_parts(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAI `usage` and the `ttscale` block of a reply, streamed or not."""
    u = result.ledger
    prompt = u.prompt_tokens + u.cached_prompt_tokens
    usage = {"prompt_tokens": prompt, "completion_tokens": u.generated_tokens,
             "total_tokens": prompt + u.generated_tokens}
    block = {"answer": result.answer, "confidence": result.confidence, "partial": result.partial,
             "votes": result.votes, "strategy": result.strategy, "budget": result.budget, "ledger": u.to_dict()}
    return usage, block


def create_app(engine: Engine, *, api_key: str | None = None, max_budget: int = 64,
               max_body_bytes: int = 1_000_000, model_name: str | None = None,
               default_strategy: str = "best_of_n", default_budget: int = 4) -> Any:
    check_defaults(default_strategy, default_budget, max_budget)
    app = FastAPI(title="ttscale", docs_url=None, redoc_url=None, openapi_url=None)
    served = model_name or f"ttscale/{engine.backend.model}"
    counters = {"disconnects": 0}

    def disconnected() -> None:
        counters["disconnects"] += 1

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "invalid request")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0, "owned_by": "ttscale"}]}

    @app.get("/v1/ttscale/stats")
    async def stats() -> dict[str, Any]:
        """Callers per backend round of the shared async loop: shows concurrent requests batching."""
        return {"round_sizes": engine.async_round_sizes, "disconnects": counters["disconnects"]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.body()
        if len(body) > max_body_bytes:
            return error(413, f"request body over {max_body_bytes} bytes")
        try:
            data = json.loads(body, parse_constant=_no_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"malformed JSON: {e}")
        except RecursionError:
            return error(400, "malformed JSON: nested too deeply")
        if not isinstance(data, dict):
            return error(400, "the body must be a JSON object")
        for k in IGNORED_OPENAI_FIELDS & data.keys():
            data.pop(k)
        try:
            req = ChatRequest.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            return error(400, f"{where}: {first['msg']}")
        if req.model is not None and req.model not in (served, MODEL_ALIAS):
            return error(404, f"model {req.model!r} is not served here: send model {served!r} "
                              f"(or {MODEL_ALIAS!r}); GET /v1/models lists it")
        opts = req.ttscale  # what the request leaves out, the server's defaults fill in
        defaults = {"strategy": default_strategy, "budget": default_budget}
        opts = opts.model_copy(update={k: v for k, v in defaults.items() if k not in opts.model_fields_set})
        if opts.budget > max_budget:
            return error(400, f"ttscale.budget {opts.budget} is over this server's maximum of {max_budget}")
        try:
            options = strategy_options(opts)
        except TTScaleError as e:
            return error(400, str(e))
        kwargs: dict[str, Any] = {k: v for k, v in {
            "temperature": req.temperature, "top_p": req.top_p,
            "max_tokens": req.max_completion_tokens or req.max_tokens,
            "stop": [req.stop] if isinstance(req.stop, str) else req.stop,
        }.items() if v is not None}
        kwargs.update(options)
        events: asyncio.Queue = asyncio.Queue()
        work = asyncio.create_task(engine.asolve([m.model_dump(exclude_none=True) for m in req.messages],
                                                 strategy=opts.strategy, budget=opts.budget, seed=req.seed or 0,
                                                 deadline_s=opts.deadline_s, **kwargs,
                                                 on_event=events.put_nowait if req.stream else None))
        if req.stream:
            await asyncio.sleep(0)  # asolve's checks run up to its first wait: their errors are still a 4xx
            if work.done() and isinstance(work.exception(), TTScaleError):
                return error(400, str(work.exception()))
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(stream_reply(work, events, Chunks(served, include_usage), reply_parts,
                                                  disconnected), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        while not work.done():  # a client that goes away stops its work (within one round)
            done, _ = await asyncio.wait({work}, timeout=0.05)
            if not done and await request.is_disconnected():
                work.cancel()
                disconnected()
                return error(499, "client disconnected")
        try:
            result = work.result()
        except TTScaleError as e:
            return error(400, str(e))
        usage, block = reply_parts(result)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text or ""},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
            "ttscale": block,
        }

    return Guard(app, api_key, max_body_bytes)


HEADER_TIMEOUT_S = 10.0  # a connection must have sent a whole request head by then
BODY_TIMEOUT_S = 30.0  # and, after its head, its whole body


def header_timeout_protocol() -> type:
    """uvicorn's h11 protocol, closing connections that send no complete request head in time.

    Why: uvicorn's keep-alive timeout only runs between requests, and any byte received cancels it, so
    half-open or slowloris connections (headers never finished) were held forever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(None)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm(self.cycle)  # the next request's head has the same time to arrive

        def _arm(self, cycle: Any) -> None:
            self.loop.call_later(HEADER_TIMEOUT_S, self._no_request_head, cycle)

        def _no_request_head(self, cycle: Any) -> None:
            if self.cycle is cycle and not self.transport.is_closing():  # no new request began since
                self.transport.close()

    return HeaderTimeoutH11


def server_config(app: Any, host: str, port: int, **options: Any) -> Any:
    """uvicorn settings for serving: idle connections closed after 5 s, a request head within 10 s, at
    most 1,000 connections at once."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                          limit_concurrency=1000, h11_max_incomplete_event_size=64 * 1024,
                          http=header_timeout_protocol(), **options)


def run_server(engine: Engine, host: str, port: int, **app_options: Any) -> None:
    import uvicorn

    uvicorn.Server(server_config(create_app(engine, **app_options), host, port)).run()
