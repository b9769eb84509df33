"""Training data for the lab policy: arith problems of the training families, some solutions with a slip,
and the other skills the strategies ask of a model (synthesis, revision, judging, P(IK)).

Why slips: a model trained only on correct traces is either right or stuck; one trained with ~12% of
solutions carrying one off-by-a-little claim through to a wrong final answer makes the same kind of
mistake when sampled, so its traces disagree, and voting, verifiers and search have something to fix.

Why the other skills: `parallel_thinking`, `refine`, `self_judge` and `pik` send prompts of their own;
the model learns them in exactly those formats (imported from the strategies, one place each), so the
strategies are measured on a model that can do what they ask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval_sets.arith import LEVELS, Problem, make_problem, parse_claim, solution_steps

TRAIN_SEED_BASE = 1000  # training problems come from arith seeds >= 1000 of the train split
EVAL_SEEDS = range(0, 100)  # evaluation uses seeds 0-99; training never contains those problems
PROBLEMS_PER_SEED = 2000  # training seed s holds indices 0..1999 of every level
SLIP_DELTAS = (-10, -2, -1, 1, 2, 10)
# P(IK) targets: the chance that the model solves a problem of each level, as the training profile aims
# for it (README); the model learns to read difficulty off the problem, which is what P(IK) asks.
PIK_PRIOR = {1: 0.95, 2: 0.75, 3: 0.5, 4: 0.3, 5: 0.15}
# Share of each kind of example (the rest are plain problems).
SKILL_MIX = {"synthesis": 0.05, "revision": 0.05, "judge_step": 0.04, "judge_solution": 0.01, "pik": 0.02}

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    """One training conversation: `messages` (ending with a user turn) and the assistant's `target`."""

    messages: tuple[tuple[str, str], ...]
    target: str
    level: int
    kind: str  # "problem", "synthesis", "revision", "judge_step", "judge_solution", "pik"
    slipped: bool = False
    facts: tuple[str, ...] = ()  # true claims of the problem ("12 - 3 = 9"), for arithmetic drills

    @property
    def problem(self) -> str:
        return self.messages[0][1]


def eval_problem_texts(per_level: int = 100, seeds: range = EVAL_SEEDS) -> set[str]:
    """Texts of the evaluation problems (the first `per_level` of every level of each eval seed)."""
    return {make_problem(s, level, j).text for s in seeds for level in LEVELS for j in range(per_level)}


def slipped_solution(problem: Problem, rng: np.random.Generator) -> tuple[str, int] | None:
    """The problem's solution with one off-by-a-little claim carried to the end; None if none applies."""
    for _ in range(8):  # a slip may make a later division inexact: try another
        step = int(rng.integers(len(problem.steps)))
        solved = problem.solve(slip=(step, int(rng.choice(SLIP_DELTAS))))
        if solved is not None:
            return solved
    return None


def training_examples(n: int, seed: int, slip_rate: float = 0.12, levels: tuple[int, ...] = LEVELS,
                      exclude: set[str] | None = None, skills: dict[str, float] | None = None) -> list[Example]:
    """`n` examples cycling through `levels` (repeat a level to weight it), deterministic in `seed`,
    none of whose problem texts is in `exclude`; a `skills` share of them teach the other skills."""
    rng = np.random.default_rng([seed, 7])
    mix = SKILL_MIX if skills is None else skills
    kinds = list(mix)
    shares = np.array([mix[k] for k in kinds], dtype=float)
    out: list[Example] = []
    used = dict.fromkeys(levels, 0)  # problems drawn so far per level
    i = 0
    while len(out) < n:
        level = levels[i % len(levels)]
        j = used[level]
        used[level] += 1
        i += 1
        problem = make_problem(TRAIN_SEED_BASE + seed * 1000 + j // PROBLEMS_PER_SEED, level, j % PROBLEMS_PER_SEED)
        if exclude and problem.text in exclude:
            continue
        r = rng.random()
        kind = "problem"
        for k, edge in zip(kinds, np.cumsum(shares)):
            if r < edge:
                kind = k
                break
        out.append(_MAKERS[kind](problem, rng, slip_rate))
    return out


def _correct(problem: Problem) -> tuple[str, int]:
    solved = problem.solve()
    assert solved is not None
    return solved


def _facts(solution: str) -> tuple[str, ...]:
    claims = (parse_claim(s) for s in solution.split("\n\n"))
    return tuple(f"{c[0]} {c[1]} {c[2]} = {c[3]}" for c in claims if c)


def problem_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    correct, _ = _correct(problem)
    solved = slipped_solution(problem, rng) if rng.random() < slip_rate else None
    return Example((("user", problem.text),), (solved or (correct,))[0], problem.level, "problem",
                   slipped=solved is not None, facts=_facts(correct))


def _attempts(problem: Problem, rng: np.random.Generator, k: int, wrong_rate: float) -> list[str]:
    out = []
    for _ in range(k):
        slipped = slipped_solution(problem, rng) if rng.random() < wrong_rate else None
        out.append((slipped or _correct(problem))[0])
    return out


def synthesis_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    """`parallel_thinking`'s synthesis prompt over K attempts (some slipped) -> the correct solution."""
    from ttscale.strategies.parallel_thinking import DEFAULT_SYNTHESIS_PROMPT, PATH_HEADER

    k = int(rng.integers(2, 6))  # parallel_thinking's default width is 4; longer prompts cost training time
    texts = _attempts(problem, rng, k, wrong_rate=float(rng.choice([0.3, 0.5, 0.8])))
    paths = "\n\n".join(PATH_HEADER.format(i=i + 1) + t for i, t in enumerate(texts))
    prompt = DEFAULT_SYNTHESIS_PROMPT.format(problem=problem.text, k=k, paths=paths)
    correct, _ = _correct(problem)
    return Example((("user", prompt),), correct, problem.level, "synthesis")


def revision_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    """`refine`'s revision turn: problem, a slipped attempt, the verdict quoting its first false step -> the
    correct solution (sometimes after two rejected attempts)."""
    from ttscale.strategies.refine import DEFAULT_FEEDBACK_PROMPT, NO_ANSWER_HINT, STEP_HINT

    messages: list[tuple[str, str]] = [("user", problem.text)]
    for _ in range(1 + int(rng.random() < 0.25)):
        attempt = slipped_solution(problem, rng)
        if attempt is None:
            break
        text = attempt[0]
        steps = solution_steps(text)
        if rng.random() < 0.08:  # an attempt cut off before its answer
            text = "\n\n".join(steps[: max(1, len(steps) - 2)])
            hint = NO_ANSWER_HINT
        else:
            bad = next(s for s in steps if parse_claim(s) and not _claim_true(s))
            hint = STEP_HINT.format(step=bad)
        messages += [("assistant", text), ("user", DEFAULT_FEEDBACK_PROMPT.format(
            score=0.0, hint=hint, answer=attempt[1], problem=problem.text))]
    correct, _ = _correct(problem)
    return Example(tuple(messages), correct, problem.level, "revision")


def _claim_true(step: str) -> bool:
    from eval_sets.arith import claim_is_correct

    return bool(claim_is_correct(step))


def judge_step_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    """`self_judge`'s step question on a step of a (sometimes slipped) solution -> Yes / No."""
    from verifiers.self_judge import judge_text

    solved = slipped_solution(problem, rng) if rng.random() < 0.5 else None
    steps = solution_steps((solved or _correct(problem))[0])[:-1]
    at = int(rng.integers(len(steps)))
    prompt = judge_text("step", problem.text, tuple(steps[:at]), steps[at])
    return Example((("user", prompt),), "Yes" if _claim_true(steps[at]) else "No", problem.level, "judge_step")


def judge_solution_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    """`self_judge`'s whole-solution question -> Yes when the final answer is right."""
    from verifiers.self_judge import judge_text

    solved = slipped_solution(problem, rng) if rng.random() < 0.5 else None
    prompt = judge_text("solution", problem.text, (), (solved or _correct(problem))[0])
    return Example((("user", prompt),), "No" if solved else "Yes", problem.level, "judge_solution")


def pik_example(problem: Problem, rng: np.random.Generator, slip_rate: float) -> Example:
    """`pik`'s question -> Yes with the level's PIK_PRIOR probability."""
    from ttscale.allocate.pik import pik_text

    answer = "Yes" if rng.random() < PIK_PRIOR[problem.level] else "No"
    return Example((("user", pik_text(problem.text)),), answer, problem.level, "pik")


_MAKERS = {"problem": problem_example, "synthesis": synthesis_example, "revision": revision_example,
           "judge_step": judge_step_example, "judge_solution": judge_solution_example, "pik": pik_example}


def random_fact(rng: np.random.Generator, max_digits: int, ops: str = "+-*/") -> str:
    """One true claim `a op b = c` over operands of up to `max_digits` digits, each digit count equally
    likely (so the 100 one-digit sums come up as often as all 3-digit ones), in the shapes the
    solutions use: sums, differences (never negative), products by a factor of 2-12, exact divisions
    (`ops` limits them)."""
    def operand(digits: int) -> int:
        d = int(rng.integers(1, digits + 1))
        return int(rng.integers(0 if d == 1 else 10 ** (d - 1), 10 ** d))

    op = ops[int(rng.integers(len(ops)))]
    if op in "+-":
        a, b = operand(max_digits), operand(max_digits)
        a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
        return f"{a} {op} {b} = {a + b if op == '+' else a - b}"
    factor = int(rng.integers(2, 13))
    a = operand(max(1, max_digits - 1)) if op == "*" else operand(max(1, max_digits - 1)) * factor
    return f"{a} * {factor} = {a * factor}" if op == "*" else f"{a} / {factor} = {a // factor}"


def drills(examples: list[Example], n: int, per_drill: int, seed: int,
           level_weights: tuple[float, ...] = (1, 1, 1, 1, 1), random_share: float = 0.0,
           max_digits: int = 3, grow: bool = False, ops: str = "+-*/") -> list[list[str]]:
    """`n` drills of `per_drill` true claims each: a `random_share` of them random facts (`random_fact`;
    with `grow`, their digit counts grow from 1 to `max_digits` over the first half of the drills, an
    arithmetic curriculum when the drills are trained in order), the rest drawn from the examples'
    solutions, each from a level chosen with `level_weights`.

    Why: learning arithmetic only from whole word problems costs ~100 tokens per claim and gives the
    result digits a small share of the loss; a drill line costs ~10 tokens, all of its loss on the result.
    """
    pools = {level: [f for e in examples if e.level == level for f in e.facts] for level in LEVELS}
    levels = [lv for lv in LEVELS if pools[lv] and lv <= len(level_weights) and level_weights[lv - 1] > 0]
    weights = np.array([level_weights[lv - 1] for lv in levels], dtype=float)
    out = []
    if not random_share and not grow:  # solution facts only: the draws the shipped weights were made with
        rng = np.random.default_rng([seed, 13])
        for _ in range(n):
            picks = rng.choice(len(levels), size=per_drill, p=weights / weights.sum())
            out.append([pools[levels[k]][int(rng.integers(len(pools[levels[k]])))] for k in picks])
        return out
    rng = np.random.default_rng([seed, 13, int(grow)])
    for i in range(n):
        digits = min(max_digits, 1 + int(2 * i * max_digits / max(1, n))) if grow else max_digits
        drill = []
        for _ in range(per_drill):
            if not levels or rng.random() < random_share:
                drill.append(random_fact(rng, digits, ops))
            else:
                lv = levels[int(rng.choice(len(levels), p=weights / weights.sum()))]
                drill.append(pools[lv][int(rng.integers(len(pools[lv])))])
        out.append(drill)
    return out
