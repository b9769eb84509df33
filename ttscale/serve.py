"""`ttscale serve`: test-time scaling behind the OpenAI chat-completions API.

Any OpenAI client or agent framework gets best-of-N, particle filtering, ... unchanged: the strategy and
budget ride in an extra body field, `"ttscale": {"strategy", "budget", "verifier", "deadline_s", ...}`.
Concurrent requests go through the engine's async loop, so they share backend batches; a client that
disconnects cancels its work. Errors come back as OpenAI-style JSON bodies with the right status.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttscale.engine import Engine
from ttscale.errors import TTScaleError

# Standard OpenAI chat fields clients send that we accept (and mostly ignore); anything else is refused.
IGNORED_OPENAI_FIELDS = {"frequency_penalty", "presence_penalty", "user", "logit_bias", "response_format",
                         "stream_options", "store", "metadata", "parallel_tool_calls", "service_tier"}


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant|developer)$")
    content: str
    name: str | None = None


class TTScaleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = "best_of_n"
    budget: int = Field(4, ge=1)
    verifier: str | None = None
    deadline_s: float | None = Field(None, gt=0)
    aggregate: str | None = None
    beam_width: int | None = Field(None, ge=1)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)
    stop: str | list[str] | None = None
    stream: bool | None = False
    ttscale: TTScaleOptions = Field(default_factory=TTScaleOptions)


def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})


def create_app(engine: Engine, *, api_key: str | None = None, max_budget: int = 64,
               max_body_bytes: int = 1_000_000, model_name: str | None = None) -> FastAPI:
    app = FastAPI(title="ttscale", docs_url=None, redoc_url=None, openapi_url=None)
    served = model_name or f"ttscale/{engine.backend.model}"

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path != "/health":
            if api_key is not None:
                given = request.headers.get("authorization", "")
                if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                    return error(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "authentication_error")
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_body_bytes:
                return error(413, f"request body over {max_body_bytes} bytes")
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0, "owned_by": "ttscale"}]}

    @app.get("/v1/ttscale/stats")
    async def stats() -> dict[str, Any]:
        """Callers per backend round of the shared async loop: shows concurrent requests batching."""
        return {"round_sizes": engine.async_round_sizes}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.body()
        if len(body) > max_body_bytes:
            return error(413, f"request body over {max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"malformed JSON: {e}")
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
        if req.stream:
            return error(400, "stream=true is not supported: test-time scaling returns one final answer")
        opts = req.ttscale
        if opts.budget > max_budget:
            return error(400, f"ttscale.budget {opts.budget} is over this server's maximum of {max_budget}")
        kwargs: dict[str, Any] = {k: v for k, v in {
            "temperature": req.temperature, "top_p": req.top_p,
            "max_tokens": req.max_completion_tokens or req.max_tokens,
            "verifier": opts.verifier, "aggregate": opts.aggregate, "beam_width": opts.beam_width,
            "stop": [req.stop] if isinstance(req.stop, str) else req.stop,
        }.items() if v is not None}
        work = asyncio.create_task(engine.asolve([m.model_dump(exclude_none=True) for m in req.messages],
                                                 strategy=opts.strategy, budget=opts.budget, seed=req.seed or 0,
                                                 deadline_s=opts.deadline_s, **kwargs))
        while not work.done():  # a client that goes away stops its work
            done, _ = await asyncio.wait({work}, timeout=0.1)
            if not done and await request.is_disconnected():
                work.cancel()
                return error(499, "client disconnected")
        try:
            result = work.result()
        except TTScaleError as e:
            return error(400, str(e))
        u = result.ledger
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text or ""},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": u.prompt_tokens + u.cached_prompt_tokens, "completion_tokens": u.generated_tokens,
                      "total_tokens": u.prompt_tokens + u.cached_prompt_tokens + u.generated_tokens},
            "ttscale": {"answer": result.answer, "confidence": result.confidence, "partial": result.partial,
                        "votes": result.votes, "strategy": result.strategy, "budget": result.budget,
                        "ledger": u.to_dict()},
        }

    return app


def run_server(engine: Engine, host: str, port: int, **app_options: Any) -> None:
    import uvicorn

    uvicorn.run(create_app(engine, **app_options), host=host, port=port, log_level="warning")
