"""How well can any estimator built on the probe's signals foretell a problem's solve rate? The ceiling
behind issue 18's goal 3 (Spearman <= -0.8), read from benchmarks/allocation.py's folders.

    python benchmarks/estimator_ceiling.py --policy ttscale/lab/arith/policy.json runs/allocation-v16h runs/allocation-s1
    python benchmarks/estimator_ceiling.py ... --logprob --backend vllm   # also resample with token log-probs

Per folder (its eval/ best-of-N records hold 32 samples per problem and seed; the solve rate is read
from the samples after the first 12, so every line below is judged on the same target):

- shipped: the policy's `probe` and `learned` estimators on the first 4 samples (as auto's probe);
- in-sample: a logistic regression on the learned estimator's features, fitted on THIS set's solve rates
  and read on the same set. It has seen the answers' rates, so no estimator on these features can do
  better here: if it stays above -0.8, the features cannot meet the goal on this set;
- more probes: the probe rule on the first 8 and 12 samples (what a bigger probe would buy);
- with --logprob: 4 fresh samples per problem and seed with token log-probabilities (the shipped fit's
  records carry none), the in-sample fit with and without their mean and least log-probability, and per
  sample the AUROC of its mean log-probability for being right (over all, and over those the verifier passes);
- reference: the share of the first 4 samples that are wrong, judged with the gold answer.

Prints one line per folder and figure; -1 is perfect, negative is right.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FROM = 12  # the solve rate is read from the samples after the largest probe


def best_of_n_runs(folder: Path) -> dict[tuple[str, int], dict]:
    """The best-of-N record with the most candidates per (problem, seed) of an allocation folder's eval grid."""
    top: dict[tuple[str, int], dict] = {}
    with open(folder / "eval" / "records.jsonl") as fh:
        for line in fh:
            r = json.loads(line)
            key = (str(r["problem_id"]), int(r["seed"]))
            if r["label"] == "best_of_n" and len(r["candidates"]) > len(top.get(key, {}).get("candidates", [])):
                top[key] = r
    return top


def per_problem(values: dict[str, list[float]], ids: list[str]) -> list[float]:
    return [float(np.mean(values[i])) for i in ids]


def in_sample(rows: dict[str, list[dict[str, float]]], names: list[str], ids: list[str], rate: list[float]) -> float | None:
    """Spearman of a regression on `names`, fitted and read on the same problems (per-problem means)."""
    from ttscale.allocate.features import NEUTRAL
    from ttscale.allocate.stats import fit_standardised, spearman

    x = np.array([[float(np.mean([f.get(n, NEUTRAL) for f in rows[i]])) for n in names] for i in ids])
    y = np.array(rate)
    model = fit_standardised(names, x, y, np.ones(len(y)))
    return spearman([-p for p in model.predict(x)], rate)  # difficulty: minus the predicted solve rate


def resampled_features(top: dict[tuple[str, int], dict], texts: dict[str, str], backend: str, model: str,
                       verifier: str) -> tuple[dict[str, list[dict[str, float]]], list[tuple[float, bool, bool]]]:
    """Probe features of 4 fresh samples per (problem, seed), with the mean and least token log-probability;
    and per sample (mean log-probability, right, passed the verifier)."""
    from ttscale.allocate.features import probe_features
    from ttscale.backends import make_backend
    from ttscale.requests import GenRequest, Sampling
    from verifiers.arith_steps import score_steps
    from verifiers.checker import grade_many
    from verifiers.extract import extract_answer
    from eval_sets.arith import solution_steps

    b = make_backend(backend, model, context_length=2048, max_num_seqs=512)
    out: dict[str, list[dict[str, float]]] = defaultdict(list)
    samples: list[tuple[float, bool, bool]] = []
    try:
        keys = sorted(top)
        reqs = [GenRequest(tuple(b.tokenizer.chat_prompt([{"role": "user", "content": texts[pid]}])), 4,
                           Sampling(temperature=0.8, max_tokens=256, seed=seed * 100_003 + i, logprobs=True))
                for i, (pid, seed) in enumerate(keys)]
        for (pid, seed), res in zip(keys, b.generate(reqs)):
            clusters: dict[str, int] = {}
            cands: list[dict[str, Any]] = []
            for c in res.completions:
                answer = extract_answer(c.text, c.finish_reason)
                claims = [s for s in score_steps(solution_steps(c.text)) if s is not None]
                lps = c.logprobs or [0.0]
                cands.append({"answer": answer, "cluster": None if answer is None else clusters.setdefault(answer, len(clusters)),
                              "tokens": len(c.token_ids), "least": min(lps),
                              "scores": {verifier: claims[-1] if claims else None, "logprob": math.exp(float(np.mean(lps)))}})
            f = probe_features(texts[pid], cands, verifier, None)
            f["least_logprob"] = float(np.mean([c["least"] for c in cands]))
            out[pid].append(f)
            right = grade_many([c.text for c in res.completions], [str(top[(pid, seed)]["gold"])] * len(cands))
            samples += [(math.log(c["scores"]["logprob"]), bool(ok), (c["scores"][verifier] or 0.0) >= 0.5)
                        for c, ok in zip(cands, right)]
    finally:
        getattr(b, "close", lambda: None)()
    return out, samples


def ceiling(folder: Path, policy: Any, args: argparse.Namespace) -> list[str]:
    from ttscale.allocate.calibrate import LEARNED_FEATURES, problem_texts, read_runs
    from ttscale.allocate.estimators import make_estimator
    from ttscale.allocate.features import probe_features
    from ttscale.allocate.stats import auroc, spearman

    top = best_of_n_runs(folder)
    texts = problem_texts(read_runs([folder / "eval"])[1])
    learned = policy.learned["features"] if policy.learned else [f for f in LEARNED_FEATURES if f != "pik"]
    names = [f for f in learned if f != "pik"]  # P(IK) needs the judge prompt: not in the records
    estimators = {n: make_estimator(n, policy) for n in ("probe", "learned") if n != "learned" or policy.learned}
    d: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    rate: dict[str, list[float]] = defaultdict(list)
    for (pid, _), r in top.items():
        cands = r["candidates"]
        if len(cands) <= TARGET_FROM:
            continue
        f = probe_features(texts.get(pid, ""), cands[:4], args.verifier, None)
        rows[pid].append(f)
        for name, est in estimators.items():
            d[name][pid].append(est.estimate(f))
        for k in (8, 12):
            d[f"probe, {k} samples"][pid].append(estimators["probe"].estimate(probe_features(texts.get(pid, ""), cands[:k], args.verifier, None)))
        d["reference"][pid].append(1.0 - float(np.mean([bool(c["correct"]) for c in cands[:4]])))
        rate[pid] += [float(bool(c["correct"])) for c in cands[TARGET_FROM:]]
    ids = sorted(rate)
    y = per_problem(rate, ids)
    lines = [f"{folder}: {len(ids)} problems, {len(top) // max(len(ids), 1)} seeds"]
    for name in estimators:
        lines.append(f"  shipped {name}{' (P(IK) left neutral)' if name == 'learned' else ''}: {spearman(per_problem(d[name], ids), y):.3f}")
    lines.append(f"  in-sample fit on {', '.join(names)}: {in_sample(rows, names, ids, y):.3f}")
    for k in (8, 12):
        lines.append(f"  probe, {k} samples: {spearman(per_problem(d[f'probe, {k} samples'], ids), y):.3f}")
    if args.logprob:
        fresh, samples = resampled_features(top, texts, args.backend, args.model, args.verifier)
        passed = [s for s in samples if s[2]]
        lines.append(f"  per fresh sample, AUROC of the mean log-probability for 'right': "
                     f"{auroc([s[0] for s in samples], [s[1] for s in samples]):.3f} over all, "
                     f"{auroc([s[0] for s in passed], [s[1] for s in passed]):.3f} over those {args.verifier} passes")
        lines.append(f"  fresh samples, in-sample fit without log-probabilities: {in_sample(fresh, names, ids, y):.3f}")
        lines.append(f"  ... with their mean and least log-probability: "
                     f"{in_sample(fresh, names + ['logprob', 'least_logprob'], ids, y):.3f}")
    lines.append(f"  reference (the first 4 samples judged with the gold answer): {spearman(per_problem(d['reference'], ids), y):.3f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="benchmarks/allocation.py --out folders")
    p.add_argument("--policy", default="ttscale/lab/arith/policy.json")
    p.add_argument("--verifier", default="arith_steps", help="the verifier whose scores the records carry")
    p.add_argument("--logprob", action="store_true", help="also resample 4 probes with token log-probabilities")
    p.add_argument("--backend", default="vllm")
    p.add_argument("--model", default="lab:arith")
    args = p.parse_args()
    from ttscale.allocate import load_policy

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    policy = load_policy(args.policy)
    for folder in args.folders:
        if not (folder / "eval" / "records.jsonl").is_file():
            raise SystemExit(f"error: no eval/records.jsonl in {folder}: pass a benchmarks/allocation.py --out folder")
        print("\n".join(ceiling(folder, policy, args)), flush=True)


if __name__ == "__main__":
    main()
