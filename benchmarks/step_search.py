"""Step-level search figures: batching, prefix reuse, and accuracy on `arith`.

1. Batching: 16 prompts x 8 particles; backend calls per step round (goal 1), and generated tokens per
   second of particle filtering as a fraction of best-of-N's at the same budget on the same backend.
2. Prefix reuse: prompt tokens the backend actually computed per generated token, with reuse (what the
   ledger counts as computed) and without (computed + served from the prefix/KV cache).
3. Accuracy on arith levels 1-3 (60 problems, seed 0) at budgets 1, 4, 16 for best_of_n (majority),
   particle and beam with the arith_steps verifier.

    python benchmarks/step_search.py --backend vllm --model lab:arith
"""

from __future__ import annotations

import argparse
import time


def run(engine, problems, strategy, budget, **kw):
    t = time.perf_counter()
    results = engine.solve_batch(problems, strategy=strategy, budget=budget, seed=0, **kw)
    return results, time.perf_counter() - t, engine.last_batch_usage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--model", default="lab:arith")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--budgets", default="1,4,16")
    ap.add_argument("--problems", type=int, default=60)
    args = ap.parse_args()

    from eval_sets import load
    from ttscale import Engine
    from verifiers import get_checker

    engine = Engine(backend=args.backend, model=args.model)
    checker = get_checker()
    common = dict(max_tokens=args.max_tokens, temperature=0.8)
    search = dict(verifier="arith_steps", **common)

    batch = [p.problem for p in load("arith", n=16, levels=[1, 2, 3], seed=0)]
    run(engine, batch[:2], "best_of_n", 2, **common)  # warm-up
    print(f"# backend={args.backend} model={args.model} max_tokens={args.max_tokens}")
    _, bon_s, bon_u = run(engine, batch, "best_of_n", 8, **common)
    pres, pf_s, pf_u = run(engine, batch, "particle", 8, **search)
    rounds = max(r.details["rounds"] for r in pres)
    print("## 1. batching (16 prompts x 8)")
    print(f"particle: {pf_u.backend_calls} backend calls for {rounds} step rounds "
          f"-> {pf_u.backend_calls / rounds:.2f} calls per step")
    bon_tps, pf_tps = bon_u.generated_tokens / bon_s, pf_u.generated_tokens / pf_s
    print(f"best_of_n: {bon_u.generated_tokens} tokens in {bon_s:.2f} s = {bon_tps:.1f} tok/s; "
          f"particle: {pf_u.generated_tokens} tokens in {pf_s:.2f} s = {pf_tps:.1f} tok/s; "
          f"fraction {pf_tps / bon_tps:.3f}")
    print("## 2. prefix reuse (particle run above)")
    computed, cached, gen = pf_u.prompt_tokens, pf_u.cached_prompt_tokens, pf_u.generated_tokens
    print(f"prompt tokens computed per generated token: with reuse {computed / gen:.3f}, "
          f"without reuse {(computed + cached) / gen:.3f} ({cached} of {computed + cached} served from cache)")

    print("## 3. accuracy, arith levels 1-3, seed 0")
    items = load("arith", n=args.problems, levels=[1, 2, 3], seed=0)
    problems = [p.problem for p in items]
    print("| strategy | " + " | ".join(f"budget {b}" for b in args.budgets.split(",")) + " |")
    print("|---|" + "---|" * len(args.budgets.split(",")))
    for strategy in ("best_of_n", "particle", "beam"):
        cells = []
        for b in (int(x) for x in args.budgets.split(",")):
            kw = common if strategy == "best_of_n" else dict(search, beam_width=min(4, b))
            res, secs, usage = run(engine, problems, strategy, b, **kw)
            correct = sum(bool(r.answer is not None and checker.equivalent(p.answer, r.answer)) for r, p in zip(res, items))
            cells.append(f"{correct / len(items):.3f} ({usage.generated_tokens} tok, {secs:.0f} s)")
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    engine.close()


if __name__ == "__main__":
    main()
