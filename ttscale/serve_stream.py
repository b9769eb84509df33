"""`stream=true` for `ttscale serve`: Server-Sent Events in OpenAI's chat.completion.chunk format.

Why stream a search that has one final answer: agent frameworks stream by default, and a long search
with a silent connection looks dead to users and to proxies. So the stream carries the search's progress
as `delta.reasoning_content` (rounds, finished candidates, the leading answer), an SSE comment every
HEARTBEAT_S seconds of silence, then the answer as `delta.content`, a chunk with `finish_reason`, and the
same `ttscale` block (answer, votes, ledger) as a non-streaming reply on the last chunk before
`data: [DONE]`. A failure after the stream began is an error chunk (`data: {"error": ...}`, which the
`openai` client raises as APIError), never a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from ttscale.errors import TTScaleError

HEARTBEAT_S = 15.0  # an SSE comment after this much silence keeps proxies and clients from timing out
NEXT_STEP = {"Generate": "generating", "Score": "scoring", "Decide": "deciding"}
log = logging.getLogger("ttscale.serve")


def progress_line(event: dict[str, Any], state: dict[str, int]) -> str | None:
    """One human-readable line for a progress event of `Engine.asolve` (None: nothing worth saying).
    A round is announced only when none of its own events said something already."""
    kind = event.get("type")
    if kind == "round":
        state["round"] = state.get("round", 0) + 1
        if state.pop("said", 0):
            return None
        nxt = str(event.get("next", ""))
        return f"round {state['round']} done; next: {NEXT_STEP.get(nxt, nxt.lower() or 'more')}\n"
    state["said"] = 1
    try:
        return _describe(kind, event)
    except (TypeError, ValueError):  # an odd event from a user's strategy must not break the reply
        return f"{kind}\n"


def _describe(kind: Any, event: dict[str, Any]) -> str | None:
    """The line for one strategy or engine event; kinds not known here show as compact JSON."""
    if kind == "candidates_finished":
        answers = ", ".join("-" if a is None else str(a) for a in event.get("answers", []))
        return f"{event.get('count', 0)} candidate(s) finished, answers: {answers or '-'}\n"
    if kind == "answer_changed":
        return f"leading answer: {event.get('answer')}\n"
    if kind == "resampled":
        return f"step {event.get('round')}: resampled, parents {event.get('parents')}\n"
    if kind == "steps_scored":
        scores = ", ".join("-" if s is None else f"{s:.2f}" for s in event.get("last_step_scores", []))
        return f"{event.get('verifier')} scored the last steps: {scores}\n"
    if kind == "deadline":
        return "deadline reached: answering with the best found so far\n"
    if kind in ("done", "failed"):
        return None  # the answer or the error chunk follows
    rest = {k: v for k, v in event.items() if k != "type"}
    return f"{kind}: {json.dumps(rest, default=str)[:200]}\n"


class Chunks:
    """SSE lines of one completion: every chunk shares its id, time and model name."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model,
                                "choices": [] if delta is None else
                                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            body["usage"] = None  # as OpenAI: null on every chunk but the usage chunk
        body.update(extra)
        return sse(body)

    @staticmethod
    def error(status: int, message: str, kind: str) -> str:
        return sse({"error": {"message": message, "type": kind, "code": status}})


def sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def stream_reply(work: asyncio.Task, events: asyncio.Queue, chunks: Chunks,
                       reply_parts: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]],
                       on_disconnect: Callable[[], None]) -> AsyncIterator[str]:
    """The SSE body for `work` (an `Engine.asolve` task whose `on_event` feeds `events`).

    `reply_parts(result)` gives the OpenAI usage and the ttscale block. A client that goes away cancels
    the generator (Starlette watches for the disconnect): the work is cancelled with it, within a round."""
    work.add_done_callback(lambda _: events.put_nowait(None))  # after the job's last event
    state: dict[str, int] = {}
    try:
        yield chunks.chunk({"role": "assistant", "content": ""})
        while True:
            try:
                event = await asyncio.wait_for(events.get(), HEARTBEAT_S)
            except TimeoutError:
                yield ": ttscale is still searching\n\n"
                continue
            if event is None:
                break
            line = progress_line(event, state)
            if line:
                yield chunks.chunk({"reasoning_content": line})
        try:
            result = work.result()
        except TTScaleError as e:
            yield chunks.error(400, str(e), "invalid_request_error")
            yield "data: [DONE]\n\n"
            return
        except Exception as e:  # a backend or scorer failure: tell the client in the stream it is reading
            log.exception("streamed request failed")
            yield chunks.error(500, f"the search failed: {type(e).__name__}: {e}", "server_error")
            yield "data: [DONE]\n\n"
            return
        usage, block = reply_parts(result)
        if result.text:
            yield chunks.chunk({"content": result.text})
        if chunks.include_usage:
            yield chunks.chunk({}, "stop")
            yield chunks.chunk(None, usage=usage, ttscale=block)
        else:
            yield chunks.chunk({}, "stop", ttscale=block)
        yield "data: [DONE]\n\n"
    finally:
        if not work.done():
            work.cancel()
            on_disconnect()
