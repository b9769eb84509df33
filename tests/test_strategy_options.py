"""Typed strategy options: a strategy registered in a test file with its options class is usable from
the API, the CLI (`--opt`), a bench recipe and `ttscale serve` with no other edit; misspelt options fail
before any work, everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import httpx
import pytest

from fakes import ExactChecker, FakeBackend
from helpers import serving_engine
from ttscale import Engine
from ttscale.errors import TTScaleError
from ttscale.requests import Generate
from ttscale.strategies.aggregate import aggregate
from ttscale.strategies.base import Candidate, StrategyGen, Task, register_strategy
from ttscale.strategies.options import StrategyOptions, parse_cli, parse_options


@dataclass(frozen=True)
class EchoOptions(StrategyOptions):
    copies: int = 1  # samples to draw
    label: str = "plain"
    sharpen: bool = False


@register_strategy("echo_test", options=EchoOptions)
def echo_test(task: Task) -> StrategyGen:
    o = task.options_as(EchoOptions, "echo_test")
    sampling = replace(task.sampling, seed=task.seed(), temperature=0.0 if o.sharpen else task.sampling.temperature)
    [completions] = yield Generate((task.prompt_ids,), o.copies, sampling, messages=task.messages)
    cands = [Candidate.from_completion(c) for c in completions]
    for c in cands:
        c.answer = task.extract(c.text)
    for c, cid in zip(cands, task.cluster([c.answer for c in cands])):
        c.cluster = cid
    out = aggregate(cands, "majority")
    out.details = {"copies": o.copies, "label": o.label, "sharpen": o.sharpen}
    return out


def boxed(prompt, j, seed):
    return "So \\boxed{4}"


def test_api_reads_the_options_class():
    engine = Engine(backend=FakeBackend(boxed), checker=ExactChecker())
    r = engine.solve("2 + 2?", strategy="echo_test", budget=3, copies=3, label="x")
    assert r.details == {"copies": 3, "label": "x", "sharpen": False} and len(r.candidates) == 3
    with pytest.raises(TTScaleError, match="unknown option.*copise.*valid options: copies, label, sharpen"):
        engine.solve("2 + 2?", strategy="echo_test", copise=3)
    with pytest.raises(TTScaleError, match="copies of strategy 'echo_test' must be an integer"):
        engine.solve("2 + 2?", strategy="echo_test", copies="many")


@pytest.mark.parametrize("strategy,options,needle", [
    ("beam", {"beem_width": 4}, "unknown option(s) beem_width for strategy 'beam'"),
    ("best_of_n", {"verifier": "prm"}, "unknown option(s) verifier for strategy 'best_of_n'"),
    ("particle", {"max_steps": 0}, "max_steps must be at least 1"),
    ("particle", {"weight_temperature": "hot"}, "must be a number"),
    ("parallel_thinking", {"fallback": "maybe"}, "must be true or false"),
])
def test_built_in_strategies_refuse_bad_options_before_any_work(strategy, options, needle):
    backend = FakeBackend(boxed)
    engine = Engine(backend=backend, checker=ExactChecker())
    with pytest.raises(TTScaleError) as e:
        engine.solve("2 + 2?", strategy=strategy, budget=4, **options)
    assert needle in str(e.value)
    assert backend.calls == []


def test_command_line_values_are_converted():
    from ttscale.strategies.particle import ParticleOptions

    o = parse_options("particle", ParticleOptions, parse_cli(["weight_temperature=0.5", "temperatures=0.3,0.9",
                                                              "step-tokens=none", "max_steps=7"]))
    assert (o.weight_temperature, o.temperatures, o.step_tokens, o.max_steps) == (0.5, (0.3, 0.9), None, 7)
    with pytest.raises(TTScaleError, match="is not key=value"):
        parse_cli(["weight_temperature"])


def test_cli_opt_reaches_a_strategy_defined_here(capsys):
    from ttscale.cli import main

    rc = main(["solve", "What is 2 + 3?", "--backend", "transformers", "--model", "lab:arith", "--strategy",
               "echo_test", "--budget", "2", "--max-tokens", "24", "--opt", "copies=2", "--opt", "label=cli",
               "--opt", "sharpen=true", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["details"] == {"copies": 2, "label": "cli", "sharpen": True} and len(out["candidates"]) == 2
    rc = main(["solve", "What is 2 + 3?", "--backend", "transformers", "--model", "lab:arith",
               "--strategy", "echo_test", "--opt", "colour=red"])
    assert rc == 2 and "unknown option(s) colour for strategy 'echo_test'" in capsys.readouterr().err


def test_recipe_options_are_checked_against_the_class():
    from ttscale.bench.config import config_from_mapping
    from ttscale.bench.run import check_names

    base = {"name": "t", "dataset": {"name": "arith", "limit": 2}, "budgets": [2], "backend": "transformers",
            "model": "lab:arith"}
    check_names(config_from_mapping({**base, "strategies": {"mine": {"strategy": "echo_test", "copies": 2}}}))
    with pytest.raises(TTScaleError, match="strategies.mine: unknown option.*copise"):
        check_names(config_from_mapping({**base, "strategies": {"mine": {"strategy": "echo_test", "copise": 2}}}))


def test_serve_passes_declared_options_and_refuses_others():
    engine = Engine(backend=FakeBackend(boxed), checker=ExactChecker())
    with serving_engine(engine) as (base, _):
        msg = [{"role": "user", "content": "2 + 2?"}]
        ok = httpx.post(f"{base}/v1/chat/completions", timeout=30, json={
            "messages": msg, "ttscale": {"strategy": "echo_test", "budget": 2, "copies": 2, "label": "served"}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["ttscale"]["ledger"]["candidates"] == 2
        bad = httpx.post(f"{base}/v1/chat/completions", timeout=30, json={
            "messages": msg, "ttscale": {"strategy": "echo_test", "budget": 2, "copise": 2}})
        assert bad.status_code == 400 and "copise" in bad.json()["error"]["message"]


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8])
def test_no_strategy_produces_more_candidates_than_its_budget(budget):
    """One meaning of budget: the most complete candidates one prompt may produce (README table)."""
    from ttscale.strategies import strategies

    def steps(prompt, j, seed):
        return f"1 + 1 = 2\n\nThe answer is \\boxed{{{(seed or 0) % 3}}}"

    engine = Engine(backend=FakeBackend(steps), checker=ExactChecker())
    for name in strategies.names():
        if name == "echo_test":
            continue
        options = {"beam_width": 1} if name in ("beam", "dvts") else {}
        r = engine.solve("2 + 2?", strategy=name, budget=budget, max_tokens=64, **options)
        assert 1 <= r.ledger.candidates <= budget, name
    results = engine.solve_batch([f"p{i}" for i in range(4)], strategy="auto", budget=budget, max_tokens=64)
    assert sum(r.ledger.candidates for r in results) <= 4 * budget
    assert all(r.ledger.candidates <= max(budget, 4 * budget) for r in results)


def test_version_flag(capsys):
    from ttscale import __version__
    from ttscale.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ttscale {__version__}"


@pytest.mark.parametrize("argv,needle", [
    (["solve", "q", "--aggregate", "nope"], "unknown aggregation 'nope'"),
    (["solve", "q", "--strategy", "particle", "--step-aggregate", "avg"], "unknown step score aggregation"),
    (["solve", "q", "--strategy", "particle", "--verifier", "prm"], "the prm verifier needs a model"),
    (["solve", "q", "--strategy", "beam", "--opt", "beem_width=2"], "unknown option(s) beem_width"),
    (["solve", "q", "--beam-width", "2"], "unknown option(s) beam_width for strategy 'best_of_n'"),
])
def test_cli_refuses_bad_input_before_loading_a_model(argv, needle, capsys):
    from ttscale.cli import main

    assert main(argv + ["--model", "/nonexistent/model.gguf"]) == 2  # would fail on the model if it got there
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and "nonexistent" not in err


def test_engine_refuses_bad_prompts_and_backend_options():
    engine = Engine(backend=FakeBackend(boxed), checker=ExactChecker())
    for bad, needle in [(None, "got NoneType"), (42, "got int"), ("caf\udcff", "not valid UTF-8")]:
        with pytest.raises(TTScaleError, match=needle):
            engine.solve(bad)
    with pytest.raises(TTScaleError, match="unknown option.*tensor_paralel.*backend 'transformers'"):
        Engine(backend="transformers", model="lab:arith", tensor_paralel=2)
