"""`pik`: the model is asked whether it can solve a problem; the score is P("Yes") from its logprobs.

After Kadavath et al. (2022), "Language Models (Mostly) Know What They Know", asked as a prompt rather
than through a trained value head: the backend's own chat template renders the question, the model
generates one greedy token with its top-k log-probabilities, and P(IK) = P(yes) / (P(yes) + P(no)).
It is registered as a verifier, so the scheduler batches every prompt's question into ONE backend call
per round and its tokens land in the ledger as verifier tokens. A tokenizer without single-token
Yes/No (some lab models) gives None (no signal), never an error.
"""

from __future__ import annotations

from collections import OrderedDict

from ttscale.requests import GenRequest, Sampling, Score
from ttscale.scoring import register_scorer

PIK_QUESTION = "Can you solve this problem correctly? Answer Yes or No."
TOP_K = 20


def pik_text(problem: str) -> str:
    return f"Problem:\n{problem.strip()}\n\n{PIK_QUESTION}"


class PIKScorer:
    """Scorer `pik`: one score per request (the request's problem), cached by problem text."""

    def __init__(self, backend, top_k: int = TOP_K, cache_size: int = 100_000) -> None:
        from verifiers.self_judge import NO_WORDS, YES_WORDS, _single_token_ids

        self.backend = backend
        self.top_k = int(top_k)
        tok = backend.tokenizer
        self.yes_ids = _single_token_ids(tok, YES_WORDS)
        self.no_ids = _single_token_ids(tok, NO_WORDS)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, float | None] = OrderedDict()

    @property
    def available(self) -> bool:
        return bool(self.yes_ids and self.no_ids)

    def score_batch(self, requests: list[Score]) -> tuple[list[list[list[float | None]]], int]:
        todo = list(dict.fromkeys(r.problem for r in requests if r.problem not in self._cache))
        tokens = self._ask(todo) if todo else 0
        out = []
        for r in requests:
            p = self._cache.get(r.problem)
            out.append([[p] for _ in (r.candidates or ((),))])
        return out, tokens

    def _ask(self, problems: list[str]) -> int:
        if not self.available:
            for p in problems:
                self._store(p, None)
            return 0
        from verifiers.self_judge import p_yes

        limit = int(getattr(self.backend, "context_length", 4096)) - 2
        asks = []
        for p in problems:
            ids = tuple(self.backend.tokenizer.chat_prompt([{"role": "user", "content": pik_text(p)}]))
            if len(ids) > limit:
                self._store(p, None)
            else:
                asks.append((p, ids))
        if not asks:
            return 0
        sampling = Sampling(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=self.top_k)
        results = self.backend.generate([GenRequest(ids, 1, sampling) for _, ids in asks])
        tokens = 0
        for (p, _), res in zip(asks, results):
            tokens += res.prompt_tokens + res.generated_tokens
            comp = res.completions[0] if res.completions else None
            tops = comp.top_logprobs[0] if comp is not None and comp.top_logprobs else {}
            self._store(p, p_yes(tops, self.yes_ids, self.no_ids) if tops else None)
        return tokens

    def _store(self, problem: str, value: float | None) -> None:
        self._cache[problem] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


@register_scorer("pik")
def _pik(backend, **options):
    return PIKScorer(backend, **options)
