"""Any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp server) over HTTP.

Requests go to `/v1/completions` with the prompt as token ids, so the server sees exactly the templated
prefix the strategy built. All requests of a round are sent concurrently (asyncio + httpx) with retries
and timeouts. Servers that ignore `n` (llama.cpp's) get the missing samples as separate requests.

A server that decodes one sequence at a time (`slots=1`; found out for llama-cpp-python's server and
llama.cpp's llama-server with one slot) gets the samples one after another, each time the one sharing
the longest prefix with the previous prompt and completion, which its single KV cache still holds. The
next one is always already on its way, so the server never waits for us.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import replace
from typing import Any

import httpx

from ttscale.backends.registry import register_backend
from ttscale.backends.base import HFTokenizer, Tokenizer
from ttscale.backends.prefix_order import PrefixOrder
from ttscale.errors import TTScaleError
from ttscale.models import is_default
from ttscale.requests import Completion, GenRequest, GenResult

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
DEFAULT_TIMEOUT_S = 120.0  # one HTTP attempt, whole body included (a stalled or trickling server ends there)
DEFAULT_RETRIES = 2
PIPELINE_DEPTH = 2  # requests in flight to a one-slot server: the one it works on and the next
FIRST_SEND_GAP_S = 0.02  # before sending a batch's second request, so the two cannot arrive swapped


def load_tokenizer(spec: str | None, model: str, chat_template: str | None = None) -> Tokenizer:
    """The client-side tokenizer: the embedded GGUF's, an HF folder/id, or a GGUF file; `chat_template`
    (resolved template text) replaces its own template."""
    name = spec or model
    if is_default(name) or name.endswith(".gguf"):
        from llama_cpp import Llama

        from ttscale.backends.llamacpp import LlamaCppTokenizer
        from ttscale.models import gguf_path

        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # llama.cpp logs from C even with verbose=False
            vocab = Llama(model_path=str(gguf_path(None if is_default(name) else name)), vocab_only=True, verbose=False)
        return LlamaCppTokenizer(vocab, chat_template)
    try:
        from transformers import AutoTokenizer

        from ttscale.models import hf_model_path

        hf = AutoTokenizer.from_pretrained(hf_model_path(name))
    except (OSError, ValueError) as e:
        raise TTScaleError(f"no tokenizer found for {name!r} ({type(e).__name__})",
                           "pass --tokenizer with an HF folder, hub id or GGUF file matching the served model") from None
    if chat_template is not None:
        hf.chat_template = chat_template
    return HFTokenizer(hf)


@register_backend("openai")
class OpenAIBackend:
    name = "openai"
    # `generate` may run in several threads at once (each its own event loop and client): the scheduler's
    # continuous rounds send each prompt's requests as they come (ttscale/backends/tickets.py).
    concurrent_calls = True

    def __init__(self, model: str | None = None, *, base_url: str, api_key: str | None = None,
                 tokenizer: str | None = None, context_length: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, max_concurrency: int = 64, chat: bool = False,
                 slots: int | None = None, chat_template: str | None = None) -> None:
        """`chat_template`: a Jinja file or text that renders prompts client-side instead of the tokenizer's
        own template (not with `chat`, where the server renders them)."""
        if not timeout_s > 0 or isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise TTScaleError(f"timeout must be positive and retries a count, got {timeout_s!r} and {retries!r}",
                               "pass e.g. --timeout 120 --retries 2")
        if chat_template is not None:
            if chat:
                raise TTScaleError("a chat template cannot apply with --chat-api: the server renders the messages",
                                   "drop --chat-template, or drop --chat-api to render prompts here")
            from ttscale.backends.chat_template import load_chat_template

            chat_template = load_chat_template(chat_template)  # before any request: a bad template fails fast
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = float(timeout_s)
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.retries = retries
        self.max_concurrency = max_concurrency
        listed = None if model else self._served_model()
        self.model = model or listed["id"]  # type: ignore[index]
        # Sequences the server decodes at once (None: many). 1 makes the scheduler run one prompt at a time.
        self.slots = slots if slots is not None else self._detect_slots(listed)
        self._held: tuple[int, ...] = ()  # what a one-slot server's KV cache holds after our last request
        self.tokenizer = load_tokenizer(tokenizer, self.model if model else (tokenizer or "default"), chat_template)
        self.context_length = context_length or 4096
        self.model_path = None
        # Token-id prompts keep the exact prefix; servers that only take text (llama.cpp's) get the
        # prompt rendered with its special tokens, which they tokenize back to the same ids.
        self.prompt_as_ids = True
        # chat=True: fresh prompts go to /v1/chat/completions as messages, so the server applies its own
        # chat template; continuations of partial solutions still use /v1/completions.
        self.chat = chat

    def _first_listed(self, timeout: float) -> dict[str, Any]:
        """The first entry of the server's `/models` listing (raises on any failure)."""
        r = httpx.get(f"{self.base_url}/models", headers=self.headers, timeout=timeout)
        r.raise_for_status()
        return r.json()["data"][0]

    def _served_model(self) -> dict[str, Any]:
        """The first model the server lists, so `--model` can be omitted for single-model servers."""
        try:
            return self._first_listed(10.0)
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
            raise TTScaleError(f"cannot reach an OpenAI-compatible server at {self.base_url} ({type(e).__name__}: {e})",
                               "start the server or fix --base-url (it usually ends in /v1)") from None

    def _detect_slots(self, listed: dict[str, Any] | None) -> int | None:
        """1 for servers known to decode one sequence at a time; llama-server says how many slots it has."""
        root = self.base_url.removesuffix("/v1")
        try:
            r = httpx.get(f"{root}/props", headers=self.headers, timeout=5.0)
            total = r.json().get("total_slots") if r.status_code == 200 else None
            if isinstance(total, int):
                return total
            listed = listed or self._first_listed(5.0)
        except (httpx.HTTPError, ValueError, KeyError, IndexError, AttributeError):
            return None
        # llama-cpp-python's server lists its models as owned by "me" and serves one request at a time.
        return 1 if listed.get("owned_by") == "me" else None

    # -- protocol -------------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return asyncio.run(self.agenerate(requests))

    async def agenerate(self, requests: list[GenRequest]) -> list[GenResult]:
        limits = httpx.Limits(max_connections=self.max_concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers, limits=limits) as client:
            if self.slots == 1:
                return await self._one_by_one(client, requests)
            sem = asyncio.Semaphore(self.max_concurrency)
            # Sent in prefix order, so a server that queues them meets shared prefixes back to back.
            order = sorted(range(len(requests)), key=lambda i: requests[i].prompt_ids)
            done = await asyncio.gather(*(self._one(client, sem, requests[i]) for i in order))
        results: list[GenResult] = [None] * len(requests)  # type: ignore[list-item]
        for i, r in zip(order, done):
            results[i] = r
        return results

    async def _one_by_one(self, client: httpx.AsyncClient, requests: list[GenRequest]) -> list[GenResult]:
        """For a one-slot server: samples one at a time, each time the one closest to what its KV cache
        holds, with the next already sent while the server works on the current one. The server queues
        requests in arrival order, so neither our processing nor the round trip leaves it idle."""
        units = [(i, k) for i, r in enumerate(requests) for k in range(r.n)]  # one sample per request
        order = PrefixOrder([requests[i].prompt_ids for i, _ in units])
        sequence, state = [], self._held
        while order:  # within a batch no prompt extends another's completion: the prompts alone decide
            u = order.next(state)
            sequence.append(u)
            state = requests[units[u][0]].prompt_ids
        sem = asyncio.Semaphore(PIPELINE_DEPTH)
        done: dict[int, GenResult] = {}

        async def fetch(u: int) -> None:
            i, k = units[u]
            r = requests[i]
            seed = None if r.sampling.seed is None else r.sampling.seed + k
            done[u] = await self._one(client, sem, replace(r, n=1, sampling=replace(r.sampling, seed=seed)))

        inflight: list[asyncio.Task] = []
        try:
            for pos, u in enumerate(sequence):
                if len(inflight) == PIPELINE_DEPTH:
                    await inflight.pop(0)
                elif pos == 1:
                    await asyncio.sleep(FIRST_SEND_GAP_S)  # so the first is surely queued first
                inflight.append(asyncio.create_task(fetch(u)))
            await asyncio.gather(*inflight)
        except BaseException:
            for t in inflight:
                t.cancel()
            raise
        if sequence:
            last = done[sequence[-1]]
            i = units[sequence[-1]][0]
            self._held = tuple(requests[i].prompt_ids) + tuple(last.completions[0].token_ids if last.completions else ())
        results = [GenResult(completions=[], prompt_tokens=0) for _ in requests]
        for u, (i, _) in enumerate(units):
            results[i].completions.extend(done[u].completions)
            results[i].prompt_tokens += done[u].prompt_tokens
            results[i].cached_prompt_tokens += done[u].cached_prompt_tokens
        return results

    def close(self) -> None:
        pass

    # -- internals --------------------------------------------------------------------------------------
    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, req: GenRequest) -> GenResult:
        try:
            return await self._one_unchecked(client, sem, req)
        except (TypeError, ValueError, AttributeError, KeyError) as e:  # a reply whose fields are junk
            raise TTScaleError(f"the server at {self.base_url} sent a completions reply with malformed fields "
                               f"({type(e).__name__}: {str(e)[:80]})",
                               "point --base-url at an OpenAI-compatible completions API") from None

    async def _one_unchecked(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, req: GenRequest) -> GenResult:
        data = await self._post(client, sem, req, req.n, req.sampling.seed)
        choices = list(data.get("choices", []))
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", len(req.prompt_ids)))
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        missing = req.n - len(choices)
        if missing > 0:  # the server ignored n: ask for the rest one by one
            seeds = [None if req.sampling.seed is None else req.sampling.seed + k for k in range(len(choices), req.n)]
            extra = await asyncio.gather(*(self._post(client, sem, req, 1, s) for s in seeds))
            for d in extra:
                choices.extend(d.get("choices", []))
                u = d.get("usage") or {}
                prompt_tokens += int(u.get("prompt_tokens", len(req.prompt_ids)))
                cached += int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return GenResult(completions=[self._completion(c, req.sampling.stop) for c in choices[: req.n]],
                         prompt_tokens=prompt_tokens - cached, cached_prompt_tokens=cached)

    async def _post(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, req: GenRequest, n: int,
                    seed: int | None) -> dict[str, Any]:
        s = req.sampling
        use_chat = self.chat and req.messages is not None
        body: dict[str, Any] = {"model": self.model, "n": n}
        if use_chat:
            body["messages"] = [{"role": r, "content": c} for r, c in req.messages]  # type: ignore[union-attr]
        else:
            body["prompt"] = self._prompt(req.prompt_ids)
        body.update({
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        })
        if s.stop:
            body["stop"] = list(s.stop)
        if seed is not None:
            body["seed"] = seed
        if s.logprobs or s.top_logprobs:
            if use_chat:
                body.update(logprobs=True, top_logprobs=s.top_logprobs)
            else:
                body["logprobs"] = max(1, s.top_logprobs)
        url = f"{self.base_url}/{'chat/completions' if use_chat else 'completions'}"
        attempt = 0
        while True:
            try:
                async with sem:  # the whole attempt is bounded: httpx's read timeout restarts on every byte
                    r = await asyncio.wait_for(client.post(url, json=body), self._attempt_s(n))
                if r.status_code >= 400 and isinstance(body.get("prompt"), list) and "prompt" in r.text:
                    # This server wants text prompts (requests already in flight find out here too). Not
                    # a retry: the same request again, in the form this server takes.
                    self.prompt_as_ids = False
                    body["prompt"] = self._prompt(req.prompt_ids)
                    continue
                if r.status_code in RETRY_STATUS and attempt < self.retries:
                    await asyncio.sleep(min(8.0, 0.5 * 2**attempt) * (1 + random.random()))
                    attempt += 1
                    continue
                if r.status_code >= 400:
                    raise TTScaleError(f"the server at {self.base_url} answered {r.status_code}: {r.text[:200]}",
                                       "check --model and the server's log")
                return self._checked(r, n)
            except (httpx.TransportError, asyncio.TimeoutError) as e:
                if attempt < self.retries:
                    await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
                    attempt += 1
                    continue
                what = (f"no complete answer within {self.timeout_s:g} s" if isinstance(e, (asyncio.TimeoutError, httpx.TimeoutException))
                        else f"cannot reach it ({type(e).__name__})")
                raise TTScaleError(f"the server at {self.base_url}: {what}, {self.retries + 1} tries",
                                   "check that the server is up and not overloaded, or raise --timeout / --retries") from None

    def _attempt_s(self, n: int) -> float:
        """Bound of one attempt: `timeout_s`, times the requests a server may make it queue behind (the one
        being decoded on a one-slot server, which also decodes n samples one after another)."""
        return self.timeout_s * (PIPELINE_DEPTH * max(1, n) if self.slots == 1 else 1)

    def _checked(self, r: httpx.Response, n: int) -> dict[str, Any]:
        """The reply's JSON, when it is a completions reply with at least one usable choice."""
        where = f"the server at {self.base_url}"
        try:
            data = r.json()
        except ValueError:
            raise TTScaleError(f"{where} answered {r.status_code} with a body that is not JSON: {r.text[:80]!r}",
                               "point --base-url at an OpenAI-compatible API (it usually ends in /v1)") from None
        if not isinstance(data, dict):
            raise TTScaleError(f"{where} answered with JSON that is not an object ({type(data).__name__})",
                               "point --base-url at an OpenAI-compatible API (it usually ends in /v1)")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not all(
                isinstance(c, dict) and (isinstance(c.get("text"), str) or isinstance(c.get("message"), dict))
                for c in choices):
            raise TTScaleError(f"{where} answered without usable choices: {r.text[:120]!r}",
                               "point --base-url at an OpenAI-compatible completions API, and check the server's log")
        if not isinstance(data.get("usage") or {}, dict):
            data["usage"] = {}
        return data

    def _prompt(self, ids: tuple[int, ...]) -> list[int] | str:
        return list(ids) if self.prompt_as_ids else self.tokenizer.decode(ids, special=True)

    def _completion(self, choice: dict[str, Any], stops: tuple[str, ...]) -> Completion:
        if "message" in choice:  # a chat completion: same fields, different places
            choice = {**choice, "text": (choice.get("message") or {}).get("content") or "",
                      "logprobs": _chat_logprobs(choice.get("logprobs"))}
        text = choice.get("text") or ""
        stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        if stop is None and choice.get("finish_reason") == "stop" and len(stops) == 1:
            stop = stops[0]  # servers that do not say which stop string matched; with one, it is that one
        ids = choice.get("token_ids") or self.tokenizer.encode(text + (stop or ""))
        lps = tops = None
        lp = choice.get("logprobs")
        if isinstance(lp, dict) and lp.get("token_logprobs") is not None:
            lps = [float(x) if x is not None and math.isfinite(x) else 0.0 for x in lp["token_logprobs"]]
        if isinstance(lp, dict) and lp.get("top_logprobs"):
            tops = [self._top_ids(d or {}) for d in lp["top_logprobs"]]
        finish = "stop" if choice.get("finish_reason") == "stop" else "length"
        return Completion(token_ids=list(ids), text=text, finish_reason=finish, logprobs=lps, top_logprobs=tops,
                          stop=stop)

    def _top_ids(self, top: dict[str, float]) -> dict[int, float]:
        """The server names top tokens by text; map back to ids where a text is exactly one token."""
        out: dict[int, float] = {}
        for tok, lp in top.items():
            ids = self.tokenizer.encode(tok)
            if len(ids) == 1 and lp is not None:
                out[ids[0]] = float(lp)
        return out


def _chat_logprobs(lp: Any) -> dict[str, Any] | None:
    """Chat-completions logprobs ({"content": [{token, logprob, top_logprobs}]}) in completions' shape."""
    if not isinstance(lp, dict) or not lp.get("content"):
        return None
    items = lp["content"]
    return {"token_logprobs": [it.get("logprob") for it in items],
            "top_logprobs": [{t["token"]: t["logprob"] for t in it.get("top_logprobs") or []} for it in items]}
