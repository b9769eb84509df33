"""Difficulty-aware allocation (strategy `auto`) on the scripted fake backend: budget conservation across a
batch, early exit, budget moving toward uncertain prompts, escalation to search, P(IK), policy fitting."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fakes import CharTokenizer, ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError
from ttscale.allocate import DEFAULT_POLICY, Policy, load_policy
from ttscale.allocate.calibrate import calibrate
from ttscale.allocate.controller import Controller, PromptState
from ttscale.allocate.estimators import make_estimator
from ttscale.allocate.features import probe_features
from ttscale.allocate.policy import monotone_at, vote_accuracy
from ttscale.allocate.stats import fit_logistic, spearman, spearman_ci
from ttscale.requests import Completion, GenResult
from ttscale.scheduler import Scheduler, outcomes
from ttscale.scoring import register_scorer
from ttscale.strategies import strategies
from ttscale.strategies.base import Candidate


def boxed(a: str) -> str:
    return f"Some work.\n\nThe answer is \\boxed{{{a}}}"


def mixed_script(prompt, j, seed):
    """easy*: always 7; split*: 1 or 2 (3 of 5 say 1); hard*: a different answer every sample."""
    text = "".join(chr(i) for i in prompt)
    draw = ((seed or 0) + 31 * j) % 1000
    if "easy" in text:
        return boxed("7")
    if "split" in text:
        return boxed("1" if draw % 5 < 3 else "2")
    return boxed(str(draw))


def engine_for(script, backend_cls=FakeBackend):
    backend = backend_cls(script)
    return Engine(backend=backend, checker=ExactChecker()), backend


PROMPTS = ["easy a", "easy b", "easy c", "split a", "split b", "hard a", "hard b", "split c"]


def alloc(r):
    return r.details["allocation"]


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 16])
def test_batch_budget_is_conserved_exactly(budget):
    engine, backend = engine_for(mixed_script)
    results = engine.solve_batch(PROMPTS, strategy="auto", budget=budget, seed=3)
    spent = sum(len(r.candidates) for r in results)
    assert spent <= budget * len(PROMPTS)
    for r in results:
        assert r.strategy == "auto" and r.budget == budget
        assert r.ledger.candidates == len(r.candidates) == alloc(r)["budget_received"]
        assert alloc(r)["reason"]
    # what the backend produced is exactly what the results hold
    assert sum(req.n for call in backend.calls for req in call) == spent
    assert engine.last_batch_usage.backend_calls == len(backend.calls)


def test_budget_moves_from_settled_to_uncertain_prompts():
    engine, backend = engine_for(mixed_script)
    budget = 8
    results = {r.problem: r for r in engine.solve_batch(PROMPTS, strategy="auto", budget=budget, seed=0)}
    k = alloc(results["easy a"])["probe_k"]
    for p in ("easy a", "easy b", "easy c"):  # settled by unanimous probes: nothing more
        assert alloc(results[p])["budget_received"] == k
        assert alloc(results[p])["reason"].startswith("settled")
        assert results[p].answer == "7"
    split = [alloc(results[p])["budget_received"] for p in ("split a", "split b", "split c")]
    hard = [alloc(results[p])["budget_received"] for p in ("hard a", "hard b")]
    assert min(split) > budget  # they received what the easy prompts did not need
    assert max(hard) < min(split)  # hopeless prompts get less than uncertain ones
    assert all(results[p].answer == "1" for p in ("split a", "split b", "split c"))
    assert alloc(results["easy a"])["difficulty"] < alloc(results["split a"])["difficulty"] < alloc(results["hard a"])["difficulty"]
    # rounds are batched: the probe round is one call with every prompt; later rounds carry all open ones
    assert len(backend.calls[0]) == len(PROMPTS) and all(req.n == k for req in backend.calls[0])
    assert len(backend.calls[1]) == 3  # the 3 split prompts together (hopeless ones got nothing more)


def test_unanimous_single_prompt_stops_after_the_probe():
    engine, backend = engine_for(lambda p, j, s: boxed("42"))
    r = engine.solve("q", strategy="auto", budget=16)
    assert r.answer == "42" and len(r.candidates) == 4 and len(backend.calls) == 1
    assert alloc(r)["reason"].startswith("settled: all 4 samples agree")
    assert alloc(r)["difficulty"] == pytest.approx(0.1)


def test_consensus_stops_early():
    # 5 of 6 agree: the leader cannot be caught, or consensus holds, well before the budget is spent
    engine, _ = engine_for(lambda p, j, s: boxed("9" if ((s or 0) + j) % 6 else "8"))
    r = engine.solve("q", strategy="auto", budget=32)
    assert r.answer == "9"
    assert len(r.candidates) < 32
    assert alloc(r)["reason"].split(":")[0] in ("consensus", "answer cannot change", "settled")


def test_answer_cannot_change_stops_a_prompt():
    policy = DEFAULT_POLICY
    c = Controller(policy, make_estimator("probe", policy), budget=4, n_prompts=1)
    s = c.add(PromptState(problem="q"))
    answers = ["5", "5", "5", "6"]
    s.candidates = [Candidate("", [], "stop", answer=a, cluster=int(a), meta={"phase": "probe"}) for a in answers]
    # 4 of a budget of 4 spent: no allotment left, the answer stands
    [plan] = c.plan([s])
    assert plan.stop and s.done
    c2 = Controller(policy, make_estimator("probe", policy), budget=5, n_prompts=1)
    s2 = c2.add(PromptState(problem="q"))
    s2.candidates = list(s.candidates)
    [plan2] = c2.plan([s2])  # one more sample: 3 vs 1 + 1 cannot flip
    assert plan2.stop and s2.reason.startswith("answer cannot change: leader 3 votes vs 1, at most 1 more")


class StepKeyword:
    """Whole solutions (several steps in one) score 0.5; a single step 0 if it says 'bad', else 1."""

    def __init__(self, backend, **options):
        pass

    def score_batch(self, requests):
        def one(step):
            return 0.5 if "\n\n" in step else (0.0 if "bad" in step else 1.0)
        return [[[one(s) for s in cand] for cand in r.candidates] for r in requests], 0


register_scorer("step_keyword")(StepKeyword)


def stepwise_script(prompt, j, seed):
    """Three steps; the last says 1 (after an 'ok' step) or 2 (after a 'bad' one), half and half."""
    text = "".join(chr(i) for i in prompt)
    done = text.split("<assistant>", 1)[1].count("\n\n") if "<assistant>" in text else 0
    draw = (seed or 0) % 2  # the fake backend's seed is the request's seed + j
    if done == 0:
        steps = [f"step one {'ok' if draw else 'bad'}", "step two", f"The answer is \\boxed{{{1 if draw else 2}}}"]
        return "\n\n".join(steps)
    if done == 1:
        return "step two\n\n" + ("The answer is \\boxed{2}" if "bad" in text else "The answer is \\boxed{1}")
    return "The answer is \\boxed{2}" if "bad" in text else "The answer is \\boxed{1}"


def test_single_prompt_escalates_to_search_with_a_verifier():
    engine, backend = engine_for(stepwise_script)
    r = engine.solve("split problem", strategy="auto", budget=16, verifier="step_keyword")
    a = alloc(r)
    assert a["strategy"] == "best_of_n+particle"
    assert [w["kind"] for w in a["waves"]][-1] == "search"
    phases = [c.meta["phase"] for c in r.candidates]
    assert phases[:4] == ["probe"] * 4 and "search" in phases
    assert len(r.candidates) <= 16
    assert r.answer == "1"  # the search weighs out the 'bad' paths
    assert "search" in r.details and r.details["search"]["verifier"] == "step_keyword"


def test_a_search_is_charged_what_it_generated_not_what_it_returned():
    """Particle filtering drops and copies particles: the tokens behind its final candidates are not what
    it generated. The token pool is charged the backend's count, the same as the ledger's."""
    engine, _ = engine_for(stepwise_script)
    r = engine.solve("split problem", strategy="auto", budget=16, verifier="step_keyword")
    assert alloc(r)["strategy"] == "best_of_n+particle"
    returned = sum(len(c.token_ids) for c in r.candidates)
    assert alloc(r)["generated_tokens"] == r.ledger.generated_tokens != returned


def test_without_a_verifier_there_is_no_search():
    engine, _ = engine_for(stepwise_script)
    r = engine.solve("split problem", strategy="auto", budget=16)
    assert alloc(r)["strategy"] == "best_of_n"
    assert all(c.meta["phase"] in ("probe", "sample") for c in r.candidates)


def test_registered_strategy_runs_under_a_plain_scheduler_like_solve():
    """Bench cells and asolve drive `auto` as an ordinary strategy: same run as engine.solve."""
    engine, _ = engine_for(mixed_script)
    via_engine = engine.solve("split a", strategy="auto", budget=8, seed=5)
    prep = engine.prepare("split a")
    task = engine.task(prep, 8, 5, 0.8, 1.0, None, (), {})
    [(outcome, ledger)] = outcomes(Scheduler(engine.backend, engine.scorer).run([strategies.get("auto")(task)]))
    assert [c.text for c in outcome.candidates] == [c.text for c in via_engine.candidates]
    assert outcome.details["allocation"]["reason"] == alloc(via_engine)["reason"]
    assert ledger.candidates == len(via_engine.candidates)


def test_asolve_auto():
    import asyncio

    engine, _ = engine_for(mixed_script)
    r = asyncio.run(engine.asolve("easy q", strategy="auto", budget=8))
    assert r.answer == "7" and alloc(r)["budget_received"] == 4


class YesNoTokenizer(CharTokenizer):
    def encode(self, text):
        return {"Yes": [1000], "No": [1001]}.get(text) or super().encode(text)


class PIKBackend(FakeBackend):
    """Answers the P(IK) question with P(yes) 0.9 for easy problems and 0.2 otherwise."""

    def __init__(self, script):
        super().__init__(script)
        self.tokenizer = YesNoTokenizer()
        self.pik_calls = []

    def generate(self, requests):
        out = []
        if any(r.sampling.top_logprobs for r in requests):
            self.pik_calls.append(list(requests))
        plain = [r for r in requests if not r.sampling.top_logprobs]
        answers = iter(super().generate(plain))
        for r in requests:
            if r.sampling.top_logprobs:
                text = "".join(chr(i) for i in r.prompt_ids if i < 1000)
                py = 0.9 if "easy" in text else 0.2
                top = {1000: math.log(py), 1001: math.log(1 - py)}
                comp = Completion([1000], "Yes", "stop", logprobs=[math.log(py)], top_logprobs=[top])
                out.append(GenResult([comp], prompt_tokens=len(r.prompt_ids)))
            else:
                out.append(next(answers))
        return out


def test_pik_estimator_costs_verifier_tokens_in_one_batched_call():
    engine, backend = engine_for(mixed_script, PIKBackend)
    results = {r.problem: r for r in engine.solve_batch(["easy a", "hard a", "split a"], strategy="auto",
                                                         budget=4, estimator="pik")}
    assert alloc(results["easy a"])["pik"] == pytest.approx(0.9)
    assert alloc(results["easy a"])["difficulty"] == pytest.approx(0.1)
    assert alloc(results["hard a"])["difficulty"] == pytest.approx(0.8)
    assert alloc(results["easy a"])["estimator"] == "pik"
    assert all(r.ledger.verifier_tokens > 0 for r in results.values())
    assert len(backend.pik_calls) == 1 and len(backend.pik_calls[0]) == 3  # every prompt's question in one call


def test_pik_without_yes_no_tokens_is_no_signal():
    engine, _ = engine_for(mixed_script)  # CharTokenizer: "Yes" is three tokens
    r = engine.solve("easy a", strategy="auto", budget=4, estimator="pik")
    assert alloc(r)["pik"] is None and alloc(r)["difficulty"] == pytest.approx(0.5)


def test_policy_default_choices_and_json_roundtrip(tmp_path):
    p = DEFAULT_POLICY
    assert p.bins[-1] == 1.0 and len(p.table) == len(p.bins)
    hard = p.bin_of(0.6)
    assert p.choose(hard, 16, "arith_steps")[1] == "particle"
    assert p.choose(hard, 16, None)[1] == "best_of_n"  # no verifier: no search
    assert p.choose(p.bin_of(0.05), 4, "arith_steps")[1] == "best_of_n"
    path = tmp_path / "p.json"
    p.save(path)
    q = load_policy(str(path))
    assert q.bins == p.bins and q.table["2"].curves == p.table["2"].curves
    with pytest.raises(TTScaleError, match="table has no entry"):
        Policy.from_dict({"bins": [0.5, 1.0], "table": {"0": {"strategy": "best_of_n", "budget": 4}}})
    with pytest.raises(TTScaleError, match="not found"):
        load_policy(str(tmp_path / "missing.json"))
    with pytest.raises(TTScaleError, match="needs a fitted model"):
        make_estimator("learned", p)
    with pytest.raises(TTScaleError, match="unknown estimator"):
        make_estimator("nope", p)


def test_hand_written_policy_targets_budget_per_bin():
    policy = {"bins": [0.3, 1.0], "table": {"0": {"strategy": "best_of_n", "budget": 4},
                                              "1": {"strategy": "best_of_n", "budget": 12}},
              "spend_leftover": False}
    engine, _ = engine_for(mixed_script)
    results = {r.problem: r for r in engine.solve_batch(["easy a", "split a"], strategy="auto", budget=16, policy=policy)}
    assert alloc(results["easy a"])["budget_received"] == 4
    assert alloc(results["split a"])["budget_received"] <= 12
    assert all(w["leftover"] == 0 for w in alloc(results["split a"])["waves"])
    # by default the budget no curve claims goes to the open prompt; the settled one still gets nothing
    results = {r.problem: r for r in engine.solve_batch(["easy a", "split a"], strategy="auto", budget=16,
                                                        policy={**policy, "spend_leftover": True})}
    assert alloc(results["easy a"])["budget_received"] == 4
    assert 12 < alloc(results["split a"])["budget_received"] <= 32 - 4
    assert alloc(results["split a"])["waves"][0]["leftover"] > 0  # the report says where it came from


def tokens_state(controller: Controller, answers: str, length: int) -> PromptState:
    s = controller.add(PromptState(problem="q"))
    s.candidates = [Candidate("", [0] * length, "stop", answer=a, cluster=int(a), meta={"phase": "probe"})
                    for a in answers]
    return s


RISING = {"bins": [1.0], "table": {"0": {"strategy": "best_of_n", "budget": 8,
                                          "curves": {"best_of_n": {2: 0.4, 4: 0.5, 8: 0.6, 16: 0.7}}}}}


def test_gain_per_token_decides_who_gets_the_pool():
    """Two prompts of the same bin and votes, one writing 4x longer solutions: the same gain costs the
    short one a quarter of the tokens, so it gets the batch's spare candidates."""
    policy = Policy.from_dict(RISING)
    c = Controller(policy, make_estimator("probe", policy), budget=8, n_prompts=2)
    short, long_ = tokens_state(c, "1212", 10), tokens_state(c, "1212", 40)
    plans = c.plan([short, long_])
    assert short.allowance == 4 + 8 and not plans[0].stop  # all of the 8 spare candidates
    assert long_.allowance == 4 and plans[1].stop


def test_the_pool_is_counted_in_tokens():
    """A settled short prompt hands back its candidates, but a long-winded prompt can buy only as many
    as the batch's tokens pay for: B x the probes' lengths, what a uniform strategy at B would spend."""
    policy = Policy.from_dict(RISING)
    c = Controller(policy, make_estimator("probe", policy), budget=8, n_prompts=2)
    settled, long_ = tokens_state(c, "1111", 10), tokens_state(c, "1212", 40)
    c.plan([settled, long_])
    assert c.token_total == 8 * (10 + 40)
    assert settled.allowance == 4 and settled.reason.startswith("settled") and settled.leftover == 0
    assert long_.allowance == 4 + (c.token_total - 4 * 10 - 4 * 40) // 40 == 9  # the candidate pool had 8


def test_the_pool_is_charged_the_tokens_generated_not_the_candidates_lengths():
    """A prompt whose requests generated more than its candidates hold (a search's pruned particles) is
    charged what was generated: for its cost per candidate and for the pool's rest."""
    policy = Policy.from_dict(RISING)
    c = Controller(policy, make_estimator("probe", policy), budget=8, n_prompts=2)
    a, b = tokens_state(c, "1212", 10), tokens_state(c, "1212", 10)
    a.tokens = 4 * 30  # its 4 candidates hold 10 tokens each, but 30 each were generated
    assert c.cost(a) == 30 and c.cost(b) == 10
    assert c.tokens_left() == 8 * (30 + 10) - (120 + 40)


def test_a_curve_that_is_flat_then_jumps_still_gets_its_budget():
    """A bin whose curve is flat to 8 candidates and jumps at 16 (a search that pays only there): the
    allocator looks past the flat part and gives the prompt 16, where a next-step rule stopped at the probe."""
    policy = Policy.from_dict({
        "bins": [1.0],
        "table": {"0": {"strategy": "particle", "budget": 16,
                        "curves": {"best_of_n": {1: 0.3, 8: 0.3, 32: 0.3}, "particle": {2: 0.3, 8: 0.3, 16: 0.6}}}},
        "strategies": {"best_of_n": {"strategy": "best_of_n"}, "particle": {"strategy": "particle"}},
    })
    c = Controller(policy, make_estimator("probe", policy), budget=16, n_prompts=1, verifier="arith_steps")
    s = c.add(PromptState(problem="q"))
    s.candidates = [Candidate("", [], "stop", answer=a, cluster=int(a), meta={"phase": "probe"}) for a in "5566"]
    [plan] = c.plan([s])
    assert not plan.stop and s.allowance == 16
    assert (plan.kind, plan.strategy, plan.n) == ("search", "particle", 12)


def test_vote_model_and_curves():
    assert vote_accuracy(1, 0.7) == pytest.approx(0.7)
    assert vote_accuracy(16, 0.7) > vote_accuracy(4, 0.7) > 0.7
    assert monotone_at({1: 0.5, 4: 0.4, 16: 0.6}, 4) == pytest.approx(0.5)


def test_logistic_regression_and_spearman():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 1))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * x[:, 0] - 1)))).astype(float)
    coef, b = fit_logistic(x, y, l2=0.0)
    assert coef[0] == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-1.0, abs=0.2)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


# -- calibrate on synthetic records ------------------------------------------------------------------------

def synthetic_records(n_problems=60, top=16, seed=0):
    """Bench-style records: problem i has solve rate p_i; wrong answers concentrate on one value."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_problems):
        p = float(rng.uniform(0.05, 1.0))
        answers = []
        for _ in range(top):
            u = rng.random()
            answers.append("gold" if u < p else ("w0" if u < p + (1 - p) * 0.5 else f"w{rng.integers(1, 50)}"))
        ids: dict[str, int] = {}
        cands = [{"answer": a, "correct": a == "gold", "cluster": ids.setdefault(a, len(ids)),
                  "scores": {"logprob": 0.9 if a == "gold" else 0.6}, "tokens": 50, "finish_reason": "stop"}
                 for a in answers]
        for b in (1, 4, 16):
            sub = cands[:b]
            counts: dict[str, int] = {}
            for c in sub:
                counts[c["answer"]] = counts.get(c["answer"], 0) + 1
            winner = max(counts, key=lambda a: (counts[a], -answers.index(a)))
            base = {"problem_id": f"p{i}", "seed": 0, "level": 1, "gold": "gold", "ledger": {"generated_tokens": 50 * b}}
            records.append({**base, "label": "best_of_n", "strategy": "best_of_n", "budget": b, "answer": winner,
                            "correct": winner == "gold", "candidates": sub})
            records.append({**base, "label": "particle", "strategy": "particle", "budget": b,
                            "correct": bool(rng.random() < min(1.0, p + 0.1 * math.log2(b))), "candidates": [],
                            "ledger": {"generated_tokens": 80 * b}})
    return records


def test_calibrate_fits_estimators_bins_and_table():
    cal = calibrate(["synthetic"], records=synthetic_records(), manifests=[], probe_k=4, n_bins=3)
    p = cal.policy
    q = p.fit["estimators"]
    assert q["probe"]["spearman"] < -0.5 and q["learned"]["spearman"] < -0.5
    assert p.estimator in ("probe", "learned") and p.learned and "agreement" in p.learned["features"]
    assert len(p.bins) == 3 and p.bins[-1] == 1.0
    easy, hard = p.entry(0), p.entry(len(p.bins) - 1)
    assert easy.curves["best_of_n"][1] > hard.curves["best_of_n"][1]
    assert easy.budget <= 4  # easy problems: a small budget already reaches the bin's best accuracy
    assert set(p.strategies) == {"best_of_n", "particle"}
    # the fitted policy drives the allocator
    engine, _ = engine_for(mixed_script)
    rs = engine.solve_batch(["easy a", "split a"], strategy="auto", budget=8, policy=p)
    assert all(alloc(r)["estimator"] == p.estimator and alloc(r)["policy"] == "calibrate:synthetic" for r in rs)


def test_the_learned_estimator_reads_what_the_model_did_not_how_the_prompt_is_worded():
    """The problem's length measures its phrasing: fitted on one set of sentence structures it would read
    unfamiliar wording as harder or easier than it is, so the learned model leaves it out."""
    lengths = {f"p{i}": {"log_chars": 4.0 + (i % 7) / 3} for i in range(60)}
    p = calibrate(["synthetic"], records=synthetic_records(), manifests=[], probe_k=4, extra_features=lengths).policy
    assert "agreement" in p.learned["features"] and "log_chars" not in p.learned["features"]


def test_calibrate_cli_writes_a_policy_solve_can_use(tmp_path, capsys):
    from ttscale.cli import main

    run = tmp_path / "run"
    run.mkdir()
    with open(run / "records.jsonl", "w") as f:
        for rec in synthetic_records(n_problems=30, seed=1):
            f.write(json.dumps(rec) + "\n")
    out = tmp_path / "policy.json"
    assert main(["calibrate", "--records", str(run), "--out", str(out), "--bins", "2"]) == 0
    printed = capsys.readouterr().out
    assert "spearman" in printed and "bin 0" in printed
    policy = load_policy(str(out))
    assert len(policy.bins) == 2 and policy.fit["problems"] == 30
    assert main(["calibrate", "--records", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_verifier_none_means_no_verifier():
    engine, _ = engine_for(stepwise_script)
    r = engine.solve("split problem", strategy="auto", budget=8, verifier="none")
    assert alloc(r)["strategy"] == "best_of_n" and r.details["verifier"] is None


# -- per-bin strategies: planted, mixed, and the model's own policy ------------------------------------------

def planted_records(n_problems=90, seed=0):
    """Three kinds of problems (easy, middling, hard by solve rate), and per kind a planted best strategy:
    easy: best_of_n@4 is already perfect; middling: particle beats everything at 16; hard: refine@8 is the
    only thing that helps. Every strategy is measured at every budget, so calibrate must find the plants."""
    rng = np.random.default_rng(seed)
    plant = {"easy": ("best_of_n", 4), "mid": ("particle", 16), "hard": ("refine", 8)}
    records = []
    for i in range(n_problems):
        kind = ("easy", "mid", "hard")[i % 3]
        p = {"easy": 0.95, "mid": 0.45, "hard": 0.08}[kind]
        answers = ["gold" if rng.random() < p else f"w{rng.integers(0, 3 if kind != 'hard' else 60)}" for _ in range(16)]
        ids: dict[str, int] = {}
        cands = [{"answer": a, "correct": a == "gold", "cluster": ids.setdefault(a, len(ids)),
                  "scores": {"logprob": 0.8}, "tokens": 50, "finish_reason": "stop"} for a in answers]
        base = {"problem_id": f"p{i}", "seed": 0, "level": 1, "gold": "gold"}
        for label in ("best_of_n", "particle", "refine"):
            for b in (4, 8, 16):
                best_label, best_budget = plant[kind]
                ok = label == best_label and b >= best_budget
                if kind == "easy" and label == "best_of_n":
                    ok = True
                rec = {**base, "label": label, "strategy": label, "budget": b, "correct": ok,
                       "candidates": cands[:b] if label == "best_of_n" else [],
                       "ledger": {"generated_tokens": 50 * b}}
                records.append(rec)
    return records


def test_calibrate_recovers_a_planted_best_strategy_per_bin():
    cal = calibrate(["planted"], records=planted_records(), manifests=[], probe_k=4, n_bins=3, min_per_bin=10)
    p = cal.policy
    assert len(p.bins) == 3
    chosen = [(p.entry(b).strategy, p.entry(b).budget) for b in range(3)]
    assert chosen == [("best_of_n", 4), ("particle", 16), ("refine", 8)], chosen
    # and the allocator runs what the bin prefers at the budget a prompt holds
    assert p.choose(1, 16, "arith_steps")[1] == "particle"
    assert p.choose(2, 8, "arith_steps")[1] == "refine"
    assert p.choose(1, 16, None)[1] != "particle" and p.choose(2, 8, None)[1] != "refine"  # both need one


def two_bin_policy(hard_strategy: str) -> Policy:
    """Easy prompts: best_of_n; the rest: `hard_strategy`, which gains more per candidate there."""
    rising = {2: 0.1, 4: 0.3, 8: 0.5, 16: 0.7}
    return Policy.from_dict({
        "bins": [0.25, 1.0],
        "table": {"0": {"strategy": "best_of_n", "budget": 4, "curves": {"best_of_n": {1: 0.9, 4: 1.0}}},
                  "1": {"strategy": hard_strategy, "budget": 16,
                        "curves": {"best_of_n": {1: 0.1, 4: 0.15, 16: 0.2}, hard_strategy: rising}}},
        "strategies": {"best_of_n": {"strategy": "best_of_n"}, hard_strategy: {"strategy": hard_strategy}},
    })


@pytest.mark.parametrize("hard_strategy, verifier", [("parallel_thinking", None), ("refine", "step_keyword")])
@pytest.mark.parametrize("budget", [4, 8])
def test_budget_is_conserved_with_mixed_strategies_across_bins(hard_strategy, verifier, budget):
    engine, backend = engine_for(mixed_script)
    results = engine.solve_batch(PROMPTS, strategy="auto", budget=budget, seed=3, policy=two_bin_policy(hard_strategy),
                                 verifier=verifier)
    spent = sum(len(r.candidates) for r in results)
    assert spent <= budget * len(PROMPTS)
    assert sum(req.n for call in backend.calls for req in call) == spent
    used = {alloc(r)["strategy"] for r in results}
    assert "best_of_n" in used and f"best_of_n+{hard_strategy}" in used, used  # both bins ran their own
    for r in results:
        assert r.ledger.candidates == len(r.candidates) == alloc(r)["budget_received"]
        # the token pool is charged what the backend generated, a search's discarded work included
        assert alloc(r)["generated_tokens"] == r.ledger.generated_tokens > 0
        assert r.details["verifier"] == verifier
        if hard_strategy == "parallel_thinking" and hard_strategy in alloc(r)["strategy"]:
            assert r.details["search"]["verifier"] is None  # unjudged: not arith_steps by default
        if hard_strategy in alloc(r)["strategy"]:
            assert alloc(r)["bin"] == 1 and {c.meta.get("strategy") for c in r.candidates} >= {hard_strategy}


def test_the_model_folder_policy_is_used_when_none_is_given(tmp_path):
    policy = two_bin_policy("parallel_thinking")
    policy.source = "fitted for this model"
    policy.save(tmp_path / "policy.json")
    (tmp_path / "ttscale.json").write_text(json.dumps({"prompt_template": "{problem}"}))
    backend = FakeBackend(mixed_script)
    backend.model_path = str(tmp_path)
    engine = Engine(backend=backend, checker=ExactChecker())
    assert engine.defaults.policy == str(tmp_path / "policy.json")
    r = engine.solve("split a", strategy="auto", budget=8)
    assert alloc(r)["policy"] == "fitted for this model"
    r = engine.solve("split a", strategy="auto", budget=8, policy="default")  # a given policy wins
    assert alloc(r)["policy"] == "default"
    (tmp_path / "policy.json").write_text("{not json")  # a damaged policy: one clear error at the solve
    with pytest.raises(TTScaleError, match="policy.json is not JSON"):
        Engine(backend=backend, checker=ExactChecker()).solve("split a", strategy="auto", budget=8)
    (tmp_path / "policy.json").unlink()
    assert Engine(backend=backend, checker=ExactChecker()).defaults.policy is None


def test_problem_texts_reload_the_split_and_offset_the_run_used():
    """P(IK) and the prompt-length feature are computed from these texts: they must be the run's problems."""
    from ttscale.allocate.calibrate import problem_texts

    man = {"config": {"dataset": {"name": "arith", "n": 6, "split": "heldout", "offset": 2, "seed": 3},
                      "budgets": [1], "strategies": ["best_of_n"]}}
    from eval_sets import load

    want = load("arith", n=6, split="heldout", offset=2, seed=3)
    assert problem_texts([man]) == {p.id: p.problem for p in want} and len(want) == 4


def test_auroc_matches_counting_pairs_with_ties():
    from ttscale.allocate.stats import auroc

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.4
    good, bad = scores[labels], scores[~labels]
    pairs = [(g > b) + 0.5 * (g == b) for g in good for b in bad]
    assert auroc(scores, labels) == pytest.approx(sum(pairs) / len(pairs))
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def test_find_stop_is_the_earliest_stop_string():
    from ttscale.backends.base import find_stop

    assert find_stop("a step\n\nnext", ("\n\n", "next")) == (6, "\n\n")
    assert find_stop("The answer is 4.", ("\n\n", "answer")) == (4, "answer")
    assert find_stop("no stop here", ("\n\n", "")) is None



def test_probe_length_is_a_feature_read_the_same_live_and_from_records():
    """`log_tokens` (the probes' mean length) comes from token ids during a solve and from the `tokens`
    a bench record keeps, so calibrate fits on what auto sees."""
    live = [Candidate("", [0] * n, "stop", answer="1", cluster=0) for n in (20, 60)]
    recorded = [{"answer": "1", "cluster": 0, "tokens": n} for n in (20, 60)]
    f_live, f_rec = probe_features("q", live), probe_features("q", recorded)
    assert f_live["log_tokens"] == f_rec["log_tokens"] == pytest.approx(math.log1p(40))
    assert probe_features("q", [{"answer": "1", "cluster": 0}])["log_tokens"] == 0.5  # unknown: neutral
    assert probe_features("q", [Candidate("", [], "stop", answer="1", cluster=0)])["log_tokens"] == 0.5  # none reported


def test_the_spearman_interval_resamples_problems() -> None:
    x = list(range(40))
    assert spearman_ci(x, [2 * v for v in x]) == pytest.approx([1.0, 1.0])
    rng = np.random.default_rng(1)
    lo, hi = spearman_ci(list(rng.normal(size=200)), list(rng.normal(size=200)))
    assert lo < 0 < hi and 0.2 < hi - lo < 0.35  # unrelated: holds 0, about 2 x 1.96 / sqrt(199) wide
    assert spearman_ci(list(range(9)), list(range(9))) is None  # too few problems to resample


WEIGHTED = {"bins": [1.0], "table": {"0": {"strategy": "best_of_n", "budget": 8, "curves": {
    "best_of_n": {2: 0.4, 4: 0.5, 8: 0.55}, "best_of_n_weighted": {2: 0.45, 4: 0.55, 8: 0.6}}}},
    "strategies": {"best_of_n": {"strategy": "best_of_n", "settings": {}},
                   "best_of_n_weighted": {"strategy": "best_of_n", "settings": {"aggregate": "weighted", "scorer": "logprob"}}}}


def test_a_bin_whose_weighted_line_is_more_accurate_votes_by_sequence_probability():
    assert Policy.from_dict(WEIGHTED).vote(0, 8, None) == ("weighted", "logprob")
    tied = json.loads(json.dumps(WEIGHTED))
    tied["table"]["0"]["curves"]["best_of_n_weighted"] = tied["table"]["0"]["curves"]["best_of_n"]
    assert Policy.from_dict(tied).vote(0, 8, None) == ("majority", None)  # ties: majority
    assert Policy.from_dict(RISING).vote(0, 8, None) == ("majority", None)  # no such line
    engine, _ = engine_for(mixed_script)
    [r] = engine.solve_batch(["split a"], strategy="auto", budget=8, seed=1, policy=WEIGHTED)
    assert (r.details["aggregate"], r.details["vote_scores"]) == ("weighted", "logprob")
    assert r.votes and all(v != int(v) for v in r.votes.values())  # sums of probabilities, not counts
    [r] = engine.solve_batch(["split a"], strategy="auto", budget=8, seed=1, policy=RISING)
    assert (r.details["aggregate"], r.details["vote_scores"]) == ("majority", "logprob")
    [r] = engine.solve_batch(["split a"], strategy="auto", budget=8, seed=1, policy=WEIGHTED, aggregate="top")
    assert r.details["aggregate"] == "top"  # the user's choice stands


def test_calibrate_rows_count_each_sample_once_when_lines_only_vote_differently():
    from ttscale.allocate.calibrate import build_rows
    from ttscale.bench.record import as_records

    records = synthetic_records(n_problems=10)
    weighted = [{**r, "label": "best_of_n_weighted", "details": {"aggregate": "weighted", "scorer": "logprob"}}
                for r in records if r["label"] == "best_of_n"]
    plain = build_rows(as_records(records), {}, 4, None)
    both = build_rows(as_records(records + weighted), {}, 4, None)
    assert len(both) == len(plain) == 10
    assert [r.samples for r in both] == [r.samples for r in plain]
    assert len(build_rows(as_records(weighted), {}, 4, None)) == 10  # a weighted line alone still gives rows


def test_the_vote_skips_lines_whose_scores_the_samples_lack():
    """A line weighted by a verifier auto does not run cannot be voted by; nor can log-probabilities a
    backend did not return."""
    from ttscale.allocate.prompt import final_vote

    policy = json.loads(json.dumps(WEIGHTED))
    policy["strategies"]["best_of_n_weighted"]["settings"]["scorer"] = "arith_steps"
    assert Policy.from_dict(policy).vote(0, 8, None) == ("majority", None)
    assert Policy.from_dict(policy).vote(0, 8, "arith_steps") == ("weighted", "arith_steps")
    controller = Controller(Policy.from_dict(WEIGHTED), make_estimator("probe", Policy.from_dict(WEIGHTED)), 8, 1)
    state = tokens_state(controller, "1122", 10)
    state.bin = 0
    assert final_vote(state, controller, "majority") == ("majority", "logprob")  # no log-probabilities
    for c in state.candidates:
        c.scores["logprob"] = 0.5
    assert final_vote(state, controller, "majority") == ("weighted", "logprob")
    state.searched = True
    assert final_vote(state, controller, "majority") == ("majority", "logprob")  # a search votes its way
