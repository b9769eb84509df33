"""transformers backend: any HF causal LM in plain PyTorch, no server, no vLLM.

Why it exists: the lab model and small HF models run anywhere torch does, with exact per-request seeds
(one torch.Generator per request) and logprobs under the raw model distribution. All rows of a round
(every sample of every request) go through one KV-cached decoding loop, left-padded, in chunks of
`max_batch` rows; there is no cache across calls, so prompt_tokens is the full prompt length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ttscale.backends.registry import register_backend
from ttscale.backends.base import HFTokenizer, find_stop
from ttscale.errors import TTScaleError
from ttscale.models import DEFAULT_MODEL, hf_model_path, is_default
from ttscale.requests import Completion, GenRequest, GenResult


@dataclass
class _Row:
    """One sample being decoded: its request, its tokens so far and whether it has finished."""

    req: int
    prompt: tuple[int, ...]
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[dict[int, float]] = field(default_factory=list)  # per position, when top_logprobs is asked
    text: str | None = None  # set when finished by a stop string (truncated text)
    finish: str | None = None
    stop: str | None = None  # the stop string that ended it (step searches tell a step from the end by it)


@register_backend("transformers")
class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str | None = None, *, dtype: str = "auto", threads: int | None = None,
                 max_batch: int = 64, device: str = "auto", context_length: int | None = None,
                 chat_template: str | None = None) -> None:
        """`chat_template`: a Jinja file or text used instead of the tokenizer's own template."""
        if chat_template is not None:
            from ttscale.backends.chat_template import load_chat_template

            chat_template = load_chat_template(chat_template)  # before the load: a bad template fails fast
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise TTScaleError(f"the transformers backend needs {e.name}", "pip install torch transformers") from None
        if threads:
            torch.set_num_threads(threads)
        self.model = DEFAULT_MODEL if is_default(model) else str(model)
        self.model_path = hf_model_path(model)
        self._torch = torch
        self.hf_tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if chat_template is not None:
            self.hf_tokenizer.chat_template = chat_template
        self.tokenizer = HFTokenizer(self.hf_tokenizer)
        # device "auto": the GPU when there is one. dtype "auto": bf16 there, fp32 on the CPU (exact logprobs).
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise TTScaleError(f"unknown dtype {dtype!r}", "pass auto, float32, bfloat16 or float16")
        self.lm = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, dtype)).to(self.device).eval()
        positions = int(getattr(self.lm.config, "max_position_embeddings", 2048))
        self.context_length = min(positions, context_length) if context_length else positions
        self.max_batch = max_batch
        eos = self.lm.generation_config.eos_token_id
        eos = eos if eos is not None else self.hf_tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        pad = self.hf_tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        torch = self._torch
        rows = [_Row(i, r.prompt_ids) for i, r in enumerate(requests) for _ in range(r.n)]
        gens = []
        for r in requests:
            g = torch.Generator()
            g.manual_seed(r.sampling.seed if r.sampling.seed is not None else int(torch.randint(2**62, (1,))))
            gens.append(g)
        # Rows of one request stay in one chunk so its generator is drawn in the same order every time.
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        chunk: list[_Row] = []
        for i in order:
            mine = [row for row in rows if row.req == i]
            if chunk and len(chunk) + len(mine) > self.max_batch:
                self._decode(chunk, requests, gens)
                chunk = []
            chunk.extend(mine)
        if chunk:
            self._decode(chunk, requests, gens)
        results = []
        for i, r in enumerate(requests):
            comps = [self._completion(row, r) for row in rows if row.req == i]
            results.append(GenResult(completions=comps, prompt_tokens=len(r.prompt_ids)))
        return results

    def _completion(self, row: _Row, req: GenRequest) -> Completion:
        text = row.text if row.text is not None else self.tokenizer.decode(row.ids)
        return Completion(token_ids=row.ids, text=text, finish_reason=row.finish or "length",
                          logprobs=row.logprobs if req.sampling.logprobs else None,
                          top_logprobs=row.tops if req.sampling.top_logprobs else None, stop=row.stop)

    def _decode(self, rows: list[_Row], requests: list[GenRequest], gens: list) -> None:
        """KV-cached decoding of `rows` (left-padded) until each hits EOS, a stop string or max_tokens."""
        torch = self._torch
        width = max(len(r.prompt) for r in rows)
        if width == 0:
            raise TTScaleError("a request has an empty prompt", "send at least one token (the chat template's)")
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, width - len(row.prompt):] = torch.tensor(row.prompt, dtype=torch.long)
            mask[b, width - len(row.prompt):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        temps = torch.tensor([requests[r.req].sampling.temperature for r in rows], dtype=torch.float32)
        top_ps = torch.tensor([requests[r.req].sampling.top_p for r in rows], dtype=torch.float32)
        limits = [min(requests[r.req].sampling.max_tokens, self.context_length - len(r.prompt)) for r in rows]
        groups: dict[int, list[int]] = {}
        for b, row in enumerate(rows):
            groups.setdefault(row.req, []).append(b)
        for b, row in enumerate(rows):
            if limits[b] <= 0:
                row.finish = "length"
        past = None
        with torch.inference_mode():
            for _ in range(max(limits)):
                out = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions,
                              past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float().cpu()  # sampling on the CPU: per-request generators
                logp = torch.log_softmax(logits, dim=-1)
                nxt = _choose(logits, temps, top_ps, groups, gens, torch)
                for b, row in enumerate(rows):
                    if row.finish is not None:
                        continue
                    tok = int(nxt[b])
                    row.ids.append(tok)
                    row.logprobs.append(float(logp[b, tok]))
                    k = requests[row.req].sampling.top_logprobs
                    if k:  # P(IK) and self_judge read P("Yes") among the k most likely tokens
                        values, idx = logp[b].topk(min(int(k), logp.shape[-1]))
                        row.tops.append(dict(zip(idx.tolist(), values.tolist())))
                    self._check_finished(row, requests[row.req], limits[b])
                if all(row.finish is not None for row in rows):
                    break
                ids = nxt.unsqueeze(1).to(self.device)
                mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long, device=self.device)], dim=1)
                positions = positions[:, -1:] + 1

    def _check_finished(self, row: _Row, req: GenRequest, limit: int) -> None:
        if row.ids[-1] in self.eos_ids:
            row.ids.pop()
            row.logprobs.pop()
            if len(row.tops) > len(row.ids):
                row.tops.pop()
            row.finish = "stop"
            return
        if req.sampling.stop:
            text = self.tokenizer.decode(row.ids)
            found = find_stop(text, req.sampling.stop)
            if found:
                # The text stops before the stop string; the ids keep the tokens that made it, so a
                # continuation from prompt + ids resumes after the delimiter (the Completion contract).
                row.text, row.stop = text[:found[0]], found[1]
                row.finish = "stop"
                return
        if len(row.ids) >= limit:
            row.finish = "length"

    def close(self) -> None:
        self.lm = None


def _choose(logits, temps, top_ps, groups: dict[int, list[int]], gens: list, torch):
    """Next token per row: argmax where temperature is 0, else a top-p sample drawn from the row's request generator."""
    nxt = logits.argmax(dim=-1)
    for req, idx in groups.items():
        t = float(temps[idx[0]])
        if t <= 0:
            continue
        probs = torch.softmax(logits[idx] / t, dim=-1)
        p = float(top_ps[idx[0]])
        if p < 1.0:
            sorted_p, sorted_i = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > p  # keep the smallest prefix with mass >= p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, sorted_i, sorted_p)
        nxt[idx] = torch.multinomial(probs, 1, generator=gens[req]).squeeze(1)
    return nxt
