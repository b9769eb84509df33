"""`pik`: the model is asked whether it can solve a problem; the score is P("Yes") from its logprobs.

After Kadavath et al. (2022), "Language Models (Mostly) Know What They Know", asked as a prompt rather
than through a trained value head: the backend's own chat template renders the question, the model
generates one greedy token with its top-k log-probabilities, and P(IK) = P(yes) / (P(yes) + P(no)).
It is registered as a verifier that yields its prompts (`score_gen`), so every prompt's question joins
the round's ONE backend call and its tokens land in the asking prompt's ledger as verifier tokens. A tokenizer without single-token
Yes/No (some lab models) gives None (no signal), never an error.
"""

from __future__ import annotations

from collections import OrderedDict

from ttscale.requests import GenRequest, Sampling, Score, ScoreGen
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

    def score_gen(self, requests: list[Score]) -> ScoreGen:
        """One score per request; a coroutine that yields the P(IK) questions not cached yet (see
        ttscale.requests.ScoreGen), counted to the first request that asked."""
        from verifiers.self_judge import p_yes

        first: dict[str, int] = {}
        for i, r in enumerate(requests):
            if r.problem not in self._cache:
                first.setdefault(r.problem, i)
        tokens = [0] * len(requests)
        asks = []
        limit = int(getattr(self.backend, "context_length", 4096)) - 2
        for p in first:
            ids = tuple(self.backend.tokenizer.chat_prompt([{"role": "user", "content": pik_text(p)}])) \
                if self.available else None
            if ids is None or len(ids) > limit:
                self._store(p, None)
            else:
                asks.append((p, ids))
        if asks:
            sampling = Sampling(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=self.top_k)
            results = yield [GenRequest(ids, 1, sampling) for _, ids in asks]
            for (p, _), res in zip(asks, results):
                tokens[first[p]] += res.prompt_tokens + res.generated_tokens
                comp = res.completions[0] if res.completions else None
                tops = comp.top_logprobs[0] if comp is not None and comp.top_logprobs else {}
                self._store(p, p_yes(tops, self.yes_ids, self.no_ids) if tops else None)
        out = [[[self._cache.get(r.problem)] for _ in (r.candidates or ((),))] for r in requests]
        return out, tokens

    def score_batch(self, requests: list[Score]) -> tuple[list[list[list[float | None]]], int]:
        from verifiers.self_judge import drive

        return drive(self.score_gen(requests), self.backend)

    def _store(self, problem: str, value: float | None) -> None:
        self._cache[problem] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


@register_scorer("pik")
def _pik(backend, **options):
    return PIKScorer(backend, **options)
