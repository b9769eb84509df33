"""Embedded CPU backend: llama.cpp through llama-cpp-python, default model SmolLM2-135M-Instruct (GGUF).

llama-cpp-python runs one sequence at a time, so a batch is served sequentially, each time the request
sharing the longest prefix with what the KV cache holds (see prefix_order): llama.cpp then keeps that
prefix and only evaluates the new tokens. `slots = 1` tells the scheduler to run one prompt's rounds at a
time, so the cache is not thrown away by switching problems every round. The model stays loaded.

Tokens are sampled one by one in Python, so progress (`on_tokens`, see backends/base.py) is reported per
token at no cost to what is sampled. Threads: the idle cores when the model loads (backends/threads.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ttscale.backends.registry import register_backend
from ttscale.backends.base import Message, TokenHook, find_stop
from ttscale.backends.prefix_order import PrefixOrder, common_prefix
from ttscale.backends.threads import auto_threads
from ttscale.errors import TTScaleError
from ttscale.models import DEFAULT_MODEL, gguf_path, is_default
from ttscale.requests import Completion, GenRequest, GenResult, Sampling


class LlamaCppTokenizer:
    """Tokenizer and chat template read from the GGUF itself."""

    def __init__(self, llm, chat_template: str | None = None) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llm
        meta = llm.metadata
        template = chat_template or meta.get("tokenizer.chat_template")  # a user's template wins
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        tok_str = lambda i: llm.detokenize([i], special=True).decode("utf-8", "replace") if i >= 0 else ""  # noqa: E731
        self._formatter = Jinja2ChatFormatter(template, eos_token=tok_str(eos_id), bos_token=tok_str(bos_id)) if template else None
        self._add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def decode(self, ids: list[int] | tuple[int, ...], special: bool = False) -> str:
        return self.llm.detokenize(list(ids), special=special).decode("utf-8", "replace")

    def chat_prompt(self, messages: list[Message]) -> list[int]:
        if self._formatter is None:
            text = "\n\n".join(m["content"] for m in messages) + "\n\n"
        else:
            text = self._formatter(messages=messages).prompt
        return self.llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=True)


@register_backend("llamacpp")
class LlamaCppBackend:
    name = "llamacpp"
    slots = 1  # sequences decoded at once
    on_tokens: TokenHook | None = None  # progress: called per generated token and per finished sample

    def __init__(self, model: str | None = None, *, context_length: int = 4096, threads: int | None = None,
                 verbose: bool = False, gpu_layers: int = 0, chat_template: str | None = None) -> None:
        """`gpu_layers`: layers offloaded to the GPU (-1: all; needs a CUDA/Metal build of llama-cpp-python).
        `chat_template`: a Jinja file or text used instead of the GGUF's own template."""
        try:
            from llama_cpp import Llama
        except ImportError:
            raise TTScaleError("llama-cpp-python is not installed", "pip install 'ttscale[llamacpp]'") from None
        if not isinstance(gpu_layers, int) or isinstance(gpu_layers, bool) or gpu_layers < -1:
            raise TTScaleError(f"gpu_layers must be -1 (all) or a number of layers, got {gpu_layers!r}",
                               "pass e.g. --gpu-layers -1")
        template = None
        if chat_template is not None:
            from ttscale.backends.chat_template import load_chat_template

            template = load_chat_template(chat_template)  # before the load: a bad template fails fast
        path: Path = gguf_path(model)
        self.model = DEFAULT_MODEL if is_default(model) else str(model)
        self.model_path = str(path)
        self.threads = threads or auto_threads()
        try:
            self.llm = Llama(
                model_path=str(path),
                n_ctx=context_length,
                n_threads=self.threads,
                n_batch=512,
                n_gpu_layers=gpu_layers,
                logits_all=False,
                verbose=verbose,
            )
        except ValueError as e:  # llama-cpp-python raises ValueError for unreadable files
            raise TTScaleError(f"could not load {path}: {e}", "check that the file is a valid GGUF model") from None
        self.tokenizer = LlamaCppTokenizer(self.llm, template)
        self.context_length = self.llm.n_ctx()
        self._n_vocab = self.llm.n_vocab()

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        results: list[GenResult | None] = [None] * len(requests)
        order = PrefixOrder([r.prompt_ids for r in requests])
        while order:
            i = order.next(self.llm.input_ids[: self.llm.n_tokens])
            req = requests[i]
            completions, processed, cached = [], 0, 0
            for j in range(req.n):
                seed = None if req.sampling.seed is None else req.sampling.seed + j
                comp, p, c = self._sample(list(req.prompt_ids), req.sampling, seed)
                completions.append(comp)
                processed, cached = processed + p, cached + c
            results[i] = GenResult(completions=completions, prompt_tokens=processed, cached_prompt_tokens=cached)
        return results  # type: ignore[return-value]

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading tokens llama.cpp will keep from its KV cache (it re-evaluates at least one)."""
        held = self.llm.input_ids[: self.llm.n_tokens]
        return min(common_prefix(held, np.asarray(tokens, dtype=held.dtype)), len(tokens) - 1)

    def _sample(self, prompt: list[int], s: Sampling, seed: int | None) -> tuple[Completion, int, int]:
        """One completion; returns it with (prompt tokens evaluated, prompt tokens reused from KV)."""
        import llama_cpp

        llm = self.llm
        if len(prompt) + 1 > self.context_length:
            raise TTScaleError(f"a request of {len(prompt)} tokens does not fit the context of {self.context_length}",
                               "use fewer steps or a larger --context-length")
        max_tokens = min(s.max_tokens, self.context_length - len(prompt))
        reused = self._reusable_prefix(prompt)
        if reused < len(prompt) - 1:
            # Evaluate all but the last prompt token now, so the first sampled token always comes from a
            # one-token step, exactly as when the prefix is cached: same seed, same sample, cache or not.
            llm.n_tokens = reused
            llm.eval(prompt[reused:-1])
        llm.set_seed(seed if seed is not None else int(np.random.randint(0, 2**31 - 1)))
        greedy = s.temperature <= 0
        vocab = llm._model.vocab
        out_ids: list[int] = []
        logprobs: list[float] | None = [] if s.logprobs else None
        tops: list[dict[int, float]] | None = [] if s.top_logprobs > 0 else None
        finish, cut = "length", None
        hook = self.on_tokens
        tokens = llm.generate(prompt, temp=0.0 if greedy else s.temperature, top_p=s.top_p, top_k=0, min_p=0.0,
                              typical_p=1.0, repeat_penalty=1.0, reset=True)
        for token in tokens:
            if logprobs is not None or tops is not None:  # logits that produced `token`, before it is evaluated
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
                norm = _logsumexp(logits)
                if logprobs is not None:
                    logprobs.append(float(logits[token] - norm))
                if tops is not None:
                    best = np.argpartition(logits, -s.top_logprobs)[-s.top_logprobs:]
                    tops.append({int(t): float(logits[t] - norm) for t in best})
            out_ids.append(token)
            if hook is not None:
                hook(1)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            if s.stop:
                cut = find_stop(self.tokenizer.decode(out_ids[-64:]), s.stop)
                if cut is not None:
                    finish = "stop"
                    break
            if len(out_ids) >= max_tokens:
                break
        tokens.close()
        if hook is not None:
            hook(0, 1)
        body = out_ids[:-1] if out_ids and llama_cpp.llama_vocab_is_eog(vocab, out_ids[-1]) else out_ids
        text = self.tokenizer.decode(body)
        found = find_stop(text, s.stop) if cut is not None else None
        stop = found[1] if found else None
        if found:
            text = text[: found[0]]
        comp = Completion(token_ids=out_ids, text=text, finish_reason=finish, logprobs=logprobs, top_logprobs=tops,
                          stop=stop)
        return comp, len(prompt) - reused, reused

    def close(self) -> None:
        self.llm.close() if hasattr(self.llm, "close") else None


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))
