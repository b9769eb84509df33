"""How far do the probe's signals go in foretelling a problem's solve rate? What lies behind issue 18's
goal 3 (Spearman <= -0.8), read from benchmarks/allocation.py's folders.

    python benchmarks/estimator_ceiling.py --policy ttscale/lab/arith/policy.json runs/allocation-v16h runs/allocation-s1
    python benchmarks/estimator_ceiling.py ... --logprob --backend vllm   # also resample with token log-probs
    python benchmarks/estimator_ceiling.py ... --pool                     # also all folders' problems at once

Per folder (its eval/ best-of-N records hold 32 samples per problem and seed; the solve rate is read
from the samples after the first 12, so every line below is judged on the same target, which is not
benchmarks/allocation.py's: that one reads the samples after the probe, and gives the learned estimator
P(IK), which the records lack):

- shipped: the policy's `probe` and `learned` estimators on the first probe_k samples (as auto's probe),
  with a 95% bootstrap interval over problems;
- in-sample: a logistic regression on the learned estimator's features (P(IK) aside), fitted on THIS
  set's solve rates and read on the same set. It has seen the rates it is judged on, so an estimator of
  that form on those features would do no better there;
- more probes: the probe rule on the first 8 and 12 samples (what a bigger probe would buy);
- with --logprob: 4 fresh samples per problem and seed with token log-probabilities (the shipped fit's
  records carry none), scored and clustered as bench does; the in-sample fit on them with and without
  their mean and least log-probability, and per sample the AUROC of its mean log-probability for being
  right (over all, and over those the verifier passes);
- reference: the share of the first probe_k samples that are wrong, judged with the gold answer.

Prints one line per folder and figure; -1 is perfect, negative is right.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import allocation  # noqa: E402  (this folder's benchmark: which records hold the probe and the target)

TARGET_FROM = 12  # the solve rate is read from the samples after the largest probe
MORE_PROBES = (8, 12)


def best_of_n_runs(folder: Path) -> dict[tuple[str, int], dict]:
    """The best-of-N record with the most candidates per (problem, seed) of an allocation folder's eval grid."""
    with open(folder / "eval" / "records.jsonl") as fh:
        return allocation.largest_best_of_n([json.loads(line) for line in fh if line.strip()])


def per_problem(values: dict[str, list[float]], ids: list[str]) -> list[float]:
    return [float(np.mean(values[i])) for i in ids]


def in_sample(rows: dict[str, list[dict[str, float]]], names: list[str], ids: list[str], rate: list[float]) -> float:
    """Spearman of a regression on `names`, fitted and read on the same problems (per-problem means)."""
    from ttscale.allocate.features import NEUTRAL
    from ttscale.allocate.stats import fit_standardised, spearman

    x = np.array([[float(np.mean([f.get(n, NEUTRAL) for f in rows[i]])) for n in names] for i in ids])
    model = fit_standardised(names, x, np.array(rate), np.ones(len(rate)))
    return float(spearman([-p for p in model.predict(x)], rate))  # difficulty: minus the predicted solve rate


def figures(top: dict[tuple[str, int], dict], texts: dict[str, str], policy: Any, verifier: str,
            fresh: dict[str, list[dict[str, float]]] | None = None) -> dict[str, Any]:
    """Every Spearman line for one set, keyed by its label (see the module docstring), and under "ci"
    the shipped estimators' 95% intervals over problems."""
    from ttscale.allocate.calibrate import LEARNED_FEATURES
    from ttscale.allocate.estimators import make_estimator
    from ttscale.allocate.features import probe_features
    from ttscale.allocate.stats import spearman, spearman_ci

    k = policy.probe_k
    names = [f for f in (policy.learned["features"] if policy.learned else LEARNED_FEATURES) if f != "pik"]
    estimators = {n: make_estimator(n, policy) for n in ("probe", "learned") if n != "learned" or policy.learned}
    d: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    rate: dict[str, list[float]] = defaultdict(list)
    for (pid, _), r in top.items():
        cands = r["candidates"]
        if len(cands) <= TARGET_FROM:
            continue
        f = probe_features(texts[pid], cands[:k], verifier, None)
        rows[pid].append(f)
        for name, est in estimators.items():
            d[f"shipped {name}"][pid].append(est.estimate(f))
        for n in MORE_PROBES:
            d[f"probe, {n} samples"][pid].append(estimators["probe"].estimate(probe_features(texts[pid], cands[:n], verifier, None)))
        d["reference"][pid].append(1.0 - float(np.mean([bool(c["correct"]) for c in cands[:k]])))
        rate[pid] += [float(bool(c["correct"])) for c in cands[TARGET_FROM:]]
    ids = sorted(rate)
    if len(ids) < 3:
        raise SystemExit(f"error: {len(ids)} problems have more than {TARGET_FROM} best-of-N samples; "
                         "run benchmarks/allocation.py with a budget of 32 (--budgets ...,32)")
    y = per_problem(rate, ids)
    out: dict[str, Any] = {label: float(spearman(per_problem(v, ids), y)) for label, v in d.items()}
    out["ci"] = {label: spearman_ci(per_problem(v, ids), y) for label, v in d.items() if label.startswith("shipped")}
    out["in-sample fit"] = in_sample(rows, names, ids, y)
    if fresh is not None:
        out["fresh, in-sample fit"] = in_sample(fresh, names, ids, y)
        out["fresh, in-sample fit with log-probabilities"] = in_sample(fresh, names + ["logprob", "least_logprob"], ids, y)
    return {"problems": len(ids), **out}


def resampled(top: dict[tuple[str, int], dict], texts: dict[str, str], backend: str, model: str,
              verifier: str, draw: int = 0) -> tuple[dict[str, list[dict[str, float]]], list[tuple[float, bool, bool]]]:
    """Probe features of 4 fresh samples per (problem, seed), scored and clustered as bench does, with the
    mean and least token log-probability; and per sample (mean log-probability, right, verifier passed)."""
    from ttscale.allocate.features import probe_features
    from ttscale.backends import make_backend
    from ttscale.requests import GenRequest, Sampling
    from ttscale.scoring import scorers
    from verifiers.checker import get_checker, grade_many
    from verifiers.extract import extract_answer

    b = make_backend(backend, model, context_length=2048, max_num_seqs=512)
    scorer = scorers.get(verifier)(b)
    out: dict[str, list[dict[str, float]]] = defaultdict(list)
    samples: list[tuple[float, bool, bool]] = []
    try:
        keys = sorted(top)
        reqs = [GenRequest(tuple(b.tokenizer.chat_prompt([{"role": "user", "content": texts[pid]}])), 4,
                           Sampling(temperature=0.8, max_tokens=256, seed=seed * 100_003 + i + 7_919 * draw, logprobs=True))
                for i, (pid, seed) in enumerate(keys)]
        for (pid, seed), res in zip(keys, b.generate(reqs)):
            texts_ = [c.text for c in res.completions]
            answers = [extract_answer(c.text, c.finish_reason) for c in res.completions]
            clusters = get_checker().cluster(answers)
            scores = solution_scores(scorer, verifier, texts[pid], texts_)
            cands: list[dict[str, Any]] = []
            for c, answer, cluster, score in zip(res.completions, answers, clusters, scores):
                lps = c.logprobs or [0.0]
                cands.append({"answer": answer, "cluster": cluster, "tokens": len(c.token_ids), "least": min(lps),
                              "scores": {verifier: score, "logprob": math.exp(float(np.mean(lps)))}})
            f = probe_features(texts[pid], cands, verifier, None)
            f["least_logprob"] = float(np.mean([c["least"] for c in cands]))
            out[pid].append(f)
            right = grade_many(texts_, [str(top[(pid, seed)]["gold"])] * len(cands))
            samples += [(math.log(c["scores"]["logprob"]), bool(ok), (c["scores"][verifier] or 0.0) >= 0.5)
                        for c, ok in zip(cands, right)]
    finally:
        getattr(b, "close", lambda: None)()
    return out, samples


def solution_scores(scorer: Any, name: str, problem: str, texts: list[str]) -> list[float | None]:
    """The verifier's score of whole solutions, as best-of-N's `score_candidates` asks for it."""
    from ttscale.requests import Score
    from ttscale.strategies.steps import aggregate_steps

    [scores], _ = scorer.score_batch([Score(verifier=name, problem=problem, candidates=tuple((t,) for t in texts),
                                            options={"unit": "solution"})])
    return [aggregate_steps(list(s), "last") if s else None for s in scores]


def judged_runs(folder: Path) -> tuple[dict[tuple[str, int], dict], dict[str, str]]:
    """A folder's largest best-of-N runs and its problem texts (an error when a text cannot be reloaded)."""
    from ttscale.allocate.calibrate import problem_texts, read_runs

    top = best_of_n_runs(folder)
    texts = problem_texts(read_runs([folder / "eval"])[1])
    missing = sorted({pid for pid, _ in top} - set(texts))
    if missing:
        raise SystemExit(f"error: the problem texts of {folder} could not be reloaded ({len(missing)} missing, e.g. "
                         f"{missing[0]}): run from the folder the benchmark ran in, so its dataset paths resolve")
    return top, texts


def shipped_lines(f: dict[str, Any]) -> list[str]:
    out = []
    for label in ("shipped probe", "shipped learned"):
        if label in f:
            ci = f["ci"].get(label)
            out.append(f"  {label}{' (P(IK) left neutral)' if label.endswith('learned') else ''}: {f[label]:.3f}"
                       + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return out


def pool(runs: dict[str, tuple[dict[tuple[str, int], dict], dict[str, str]]]) -> tuple[dict, dict]:
    """Several folders' runs and texts as one set; a problem id in two folders is refused (the same
    problems twice would narrow every interval for nothing)."""
    top: dict[tuple[str, int], dict] = {}
    texts: dict[str, str] = {}
    for name, (t, x) in runs.items():
        twice = sorted({pid for pid, _ in t} & {pid for pid, _ in top})
        if twice:
            raise SystemExit(f"error: {name} holds problems another folder holds too (e.g. {twice[0]}): "
                             "pool folders of different problems")
        top.update(t)
        texts.update(x)
    return top, texts


def pooled(folders: list[Path], policy: Any, verifier: str) -> list[str]:
    """The shipped estimators and the in-sample fit over every folder's problems at once."""
    top, texts = pool({str(folder): judged_runs(folder) for folder in folders})
    f = figures(top, texts, policy, verifier)
    return [f"all {len(folders)} folders pooled: {f['problems']} problems", *shipped_lines(f),
            f"  in-sample fit on the learned features (P(IK) aside): {f['in-sample fit']:.3f}",
            f"  reference (the first {policy.probe_k} samples judged with the gold answer): {f['reference']:.3f}"]


def ceiling(folder: Path, policy: Any, args: argparse.Namespace) -> list[str]:
    from ttscale.allocate.stats import auroc

    top, texts = judged_runs(folder)
    fresh, samples = (resampled(top, texts, args.backend, args.model, args.verifier, args.draw) if args.logprob
                      else (None, []))
    f = figures(top, texts, policy, args.verifier, fresh)
    lines = [f"{folder}: {f['problems']} problems", *shipped_lines(f)]
    lines.append(f"  in-sample fit on the learned features (P(IK) aside): {f['in-sample fit']:.3f}")
    lines += [f"  probe, {n} samples: {f[f'probe, {n} samples']:.3f}" for n in MORE_PROBES]
    if fresh is not None:
        passed = [s for s in samples if s[2]]
        lines.append(f"  per fresh sample, AUROC of the mean log-probability for 'right': "
                     f"{auroc([s[0] for s in samples], [s[1] for s in samples]):.3f} over all, "
                     f"{auroc([s[0] for s in passed], [s[1] for s in passed]):.3f} over those {args.verifier} passes")
        lines.append(f"  fresh samples, in-sample fit without log-probabilities: {f['fresh, in-sample fit']:.3f}")
        lines.append(f"  ... with their mean and least log-probability: {f['fresh, in-sample fit with log-probabilities']:.3f}")
    lines.append(f"  reference (the first {policy.probe_k} samples judged with the gold answer): {f['reference']:.3f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="benchmarks/allocation.py --out folders")
    p.add_argument("--policy", default="ttscale/lab/arith/policy.json")
    p.add_argument("--verifier", default="arith_steps", help="the verifier whose scores the records carry")
    p.add_argument("--logprob", action="store_true", help="also resample 4 probes with token log-probabilities")
    p.add_argument("--pool", action="store_true", help="also judge all the folders' problems together")
    p.add_argument("--draw", type=int, default=0, help="with --logprob: which draw of fresh samples (their seeds)")
    p.add_argument("--backend", default="vllm")
    p.add_argument("--model", default="lab:arith")
    args = p.parse_args()
    from ttscale.allocate import load_policy

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if args.pool and len({f.resolve() for f in args.folders}) < 2:
        raise SystemExit("error: --pool needs two or more different folders")
    if args.draw and not args.logprob:
        raise SystemExit("error: --draw picks a draw of the fresh samples: pass it with --logprob")
    policy = load_policy(args.policy)
    for folder in args.folders:
        if not (folder / "eval" / "records.jsonl").is_file():
            raise SystemExit(f"error: no eval/records.jsonl in {folder}: pass a benchmarks/allocation.py --out folder")
        print("\n".join(ceiling(folder, policy, args)), flush=True)
    if args.pool:
        print("\n".join(pooled(args.folders, policy, args.verifier)), flush=True)


if __name__ == "__main__":
    main()
