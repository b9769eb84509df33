"""Verifiers that score candidates inside a search, registered by name.

A scorer is built once per engine (with the engine's backend, so the policy model can judge itself, and
the user's options for it, such as a PRM's path) and gets every `Score` request of one scheduler round
for its name at once, so a model-based scorer can batch them. It returns, per request, per candidate,
one score per step, plus the tokens it processed (they go into the ledger as verifier tokens).
"""

from __future__ import annotations

from typing import Callable, Protocol

from ttscale.registry import Registry
from ttscale.requests import Score

StepScores = list[float | None]


class Scorer(Protocol):
    def score_batch(self, requests: list[Score]) -> tuple[list[list[StepScores]], int]: ...


ScorerFactory = Callable[..., Scorer]  # (backend, **options) -> Scorer
scorers: Registry[ScorerFactory] = Registry("verifier")
register_scorer = scorers.register

# Built-in verifiers live in the standalone `verifiers` package; these factories import them on first use.


def _construct(name: str, cls: type, *args: object, **options: object) -> Scorer:
    """Build a verifier, turning a misspelt option into a one-line error that lists the valid ones."""
    import inspect

    from ttscale.errors import TTScaleError

    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k != "backend"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise TTScaleError(f"unknown option(s) {', '.join(unknown)} for verifier {name!r}",
                               f"valid options: {', '.join(valid)}")
    return cls(*args, **options)


@register_scorer("arith_steps")
def _arith_steps(backend, **options):
    from verifiers.arith_steps import ArithStepsVerifier

    return _construct("arith_steps", ArithStepsVerifier, **options)


@register_scorer("self_judge")
def _self_judge(backend, **options):
    from verifiers.self_judge import SelfJudgeVerifier

    return _construct("self_judge", SelfJudgeVerifier, backend, **options)


@register_scorer("prm")
def _prm(backend, **options):
    from verifiers.prm import PRMVerifier

    model = options.get("model")
    if model and str(model).startswith("lab:"):  # a lab PRM shipped inside ttscale (lab:arith-prm)
        from ttscale.lab import resolve_lab_model

        options = {**options, "model": str(resolve_lab_model(str(model)))}
    return PRMVerifier(**options)
