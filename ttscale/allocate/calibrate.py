"""`ttscale calibrate`: fit the difficulty estimators and the allocation policy from bench records.

From the records of a `ttscale bench` run (best-of-N, and any other strategies at several budgets):

1. per problem, the observed solve rate: the share of its best-of-N samples that are correct;
2. per (problem, seed), the probe features of the first k best-of-N samples (what `auto`'s probe would
   have seen), or the exact features `auto` recorded when the run had `auto` cells (those carry P(IK));
3. the estimators: Platt scaling for `probe` (and `pik` when P(IK) was recorded), a logistic regression
   for `learned`; the one with the lowest cross-validated log loss becomes the policy's estimator;
4. difficulty bins at quantiles of that estimator's difficulty, and per bin the accuracy and tokens of
   every (strategy, budget) cell of the records: the curves the allocator reads gains from, and the
   bin's compute-optimal choice (the cheapest cell within `tolerance` of the bin's best accuracy).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ttscale.allocate.estimators import LearnedEstimator, PIKEstimator, ProbeEstimator
from ttscale.allocate.features import FEATURES, NEUTRAL, probe_features
from ttscale.allocate.policy import DEFAULT_POLICY, BinEntry, Policy
from ttscale.allocate.stats import fit_logistic, fit_standardised, log_loss, logit, pearson, sigmoid, spearman
from ttscale.bench.record import BenchRecord, as_records
from ttscale.errors import TTScaleError

# What the learned estimator is fitted on: what the model DID with the prompt, not how the prompt is
# worded. `log_chars` (the problem's length) is left out: it measures the phrasing, and a fit on one set of
# sentence structures learns their lengths (held-out wording, with other lengths and distractor
# sentences, then reads as harder or easier than it is). It is still computed, for policies fitted with it.
SURFACE_FEATURES = ("log_chars",)
LEARNED_FEATURES = [f for f in FEATURES if f not in SURFACE_FEATURES]


@dataclass
class Row:
    """One probe of one problem: its features and the problem's observed solve rate."""

    problem_id: str
    seed: int
    features: dict[str, float]
    solve_rate: float = 0.0
    samples: int = 0  # best-of-N samples behind the solve rate


@dataclass
class Calibration:
    policy: Policy
    rows: list[Row]
    difficulty: dict[str, dict[str, float]] = field(default_factory=dict)  # estimator -> problem -> mean d
    report: dict[str, Any] = field(default_factory=dict)


# -- reading ---------------------------------------------------------------------------------------------

def read_runs(paths: Iterable[str | Path]) -> tuple[list[BenchRecord], list[dict[str, Any]]]:
    """All records and manifests of bench run folders (or records.jsonl files)."""
    from ttscale.bench.manifest import read_manifest
    from ttscale.bench.records import RECORDS_FILE, read_records

    records, manifests = [], []
    for p in paths:
        p = Path(p)
        folder = p if p.is_dir() else p.parent
        file = p / RECORDS_FILE if p.is_dir() else p
        if not file.is_file():
            raise TTScaleError(f"no bench records at {file}", "pass a `ttscale bench --out` folder")
        rep = read_records(file)
        records += as_records(rep.records)
        man = read_manifest(folder) if (folder / "manifest.json").is_file() else None
        if man:
            manifests.append(man)
    if not records:
        raise TTScaleError("the records are empty", "run `ttscale bench` first")
    return records, manifests


def problem_texts(manifests: list[dict[str, Any]], data_dir: str | None = None) -> dict[str, str]:
    """Problem texts by id, reloaded from the datasets the manifests name, exactly as the runs loaded them
    (split and offset included); empty if that fails."""
    from ttscale.bench.config import config_from_mapping
    from ttscale.bench.run import load_problems

    texts: dict[str, str] = {}
    for man in manifests:
        try:
            config = config_from_mapping(man.get("config", {}), where="manifest")
            if data_dir:
                config = replace(config, dataset=replace(config.dataset, data_dir=data_dir))
            problems, _ = load_problems(config)
        except Exception:  # texts only add the prompt-length feature; calibrating works without them
            continue
        texts.update({p.id: p.problem for p in problems})
    return texts


def pik_features(manifests: list[dict[str, Any]], engine: Any = None, data_dir: str | None = None,
                 backend: str | None = None) -> dict[str, dict[str, float]]:
    """P(IK) of every problem the runs hold, as calibrate's `extra_features`: asked of the runs' own model
    (or `engine`'s) in one batched call. Why apart: bench records carry samples, not the model's answer
    to "can you solve this?", and the `pik` and `learned` estimators need it."""
    import ttscale.allocate.pik  # noqa: F401  (registers the `pik` scorer)
    from ttscale.requests import Score

    texts = problem_texts(manifests, data_dir)
    if not texts:
        raise TTScaleError("--pik needs the problems, and the runs' datasets could not be reloaded",
                           "pass --data-dir, or calibrate without --pik")
    if engine is None:  # the runs' own engine (backend options included), or on `backend` instead
        from ttscale.bench.config import config_from_mapping
        from ttscale.bench.ray_exec import build_engine
        from ttscale.bench.recipe import for_other_backend

        config = dict(manifests[0].get("config", {}))
        if backend:  # the runs' backend options this backend does not take are left out
            config = {**for_other_backend(config, backend, "--pik", None), "backend": backend}
        engine = build_engine(config_from_mapping(config, where="the runs' manifest"))
    ids = sorted(texts)
    scores, _ = engine.scorer("pik").score_batch([Score("pik", texts[i], (("",),)) for i in ids])
    return {i: {"pik": s[0][0]} for i, s in zip(ids, scores) if s[0][0] is not None}


def strategy_specs(records: list[BenchRecord], manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for man in manifests:
        for label, spec in dict(man.get("config", {}).get("strategies", {})).items():
            spec = {k: v for k, v in dict(spec).items() if k != "budgets"}
            specs[label] = {"strategy": spec.pop("strategy", label), "settings": spec}
    for r in records:
        specs.setdefault(r.label, {"strategy": r.strategy or r.label, "settings": {}})
    return specs


def detect_verifier(records: list[BenchRecord]) -> str | None:
    """The solution verifier best-of-N candidates were scored with, if any (not the free logprob)."""
    for r in records:
        if r.strategy == "best_of_n":
            for c in r.candidates:
                for k in (c.scores or {}):
                    if k not in ("logprob", "weight"):
                        return k
    return None


# -- rows ------------------------------------------------------------------------------------------------

def build_rows(records: list[BenchRecord], texts: dict[str, str], probe_k: int, verifier: str | None,
               extra: dict[str, dict[str, float]] | None = None) -> list[Row]:
    """Probe rows per (problem, seed) and solve rates per problem from the best-of-N records. A line that
    only votes differently (weighted, top) draws the same samples as the majority line: when a majority
    line is there, only it gives rows, so no sample counts twice."""
    sampled = [r for r in records if r.strategy == "best_of_n"]
    if any(vote_of(r) == "majority" for r in sampled):
        sampled = [r for r in sampled if vote_of(r) == "majority"]
    elif sampled:  # only lines that vote otherwise: one of them
        sampled = [r for r in sampled if r.label == sampled[0].label]
    largest: dict[tuple[str, str, int], BenchRecord] = {}
    for r in sampled:
        key = (str(r.problem_id), r.label, int(r.seed))
        if key not in largest or len(r.candidates) > len(largest[key].candidates):
            largest[key] = r
    samples: dict[str, list[tuple[tuple[str, int], int, bool]]] = defaultdict(list)  # problem -> (run, idx, ok)
    for (pid, label, seed), r in largest.items():
        for i, c in enumerate(r.candidates):
            samples[pid].append(((label, seed), i, c.correct is True))

    def rate(pid: str, exclude: tuple[str, int] | None, k: int) -> tuple[float, int]:
        got = [ok for run, i, ok in samples.get(pid, []) if not (run == exclude and i < k)]
        if not got:
            got = [ok for _, _, ok in samples.get(pid, [])]
        return (sum(got) / len(got), len(got)) if got else (0.0, 0)

    rows: list[Row] = []
    for (pid, label, seed), r in sorted(largest.items()):
        cands = r.candidates[:probe_k]
        if len(cands) < min(probe_k, 2):
            continue
        text = texts.get(pid)
        f = probe_features(text if text is not None else 0, cands, verifier, None)
        if text is None:
            f["log_chars"] = NEUTRAL
        f.update((extra or {}).get(pid, {}))
        sr, n = rate(pid, (label, seed), probe_k)
        rows.append(Row(pid, seed, f, sr, n))
    for r in records:  # auto cells recorded their exact probe features, P(IK) included
        feats = (r.details.get("allocation") or {}).get("features")
        if r.strategy == "auto" and feats and str(r.problem_id) in samples:
            sr, n = rate(str(r.problem_id), None, 0)
            f = {k: float(v) for k, v in feats.items()}
            if "log_tokens" not in f:  # recorded before the feature existed: the probes are the first k candidates
                f["log_tokens"] = probe_features(0, r.candidates[:int(f.get("k", probe_k))])["log_tokens"]
            rows.append(Row(str(r.problem_id), int(r.seed), f, sr, n))
    return rows


def vote_of(r: BenchRecord) -> str:
    """How a best-of-N record's samples were voted (majority when it does not say)."""
    return str(r.details.get("aggregate") or "majority")


# -- fitting ---------------------------------------------------------------------------------------------

def _platt(raw: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    coef, b = fit_logistic(logit(raw)[:, None], y, w, l2=1e-2)
    return {"a": round(float(coef[0]), 6), "b": round(float(b), 6)}


def _folds(rows: list[Row], k: int = 5) -> list[np.ndarray]:
    """Cross-validation folds by problem (a problem's rows never straddle train and test)."""
    ids = sorted({r.problem_id for r in rows})
    rng = np.random.default_rng(0)
    rng.shuffle(ids)
    fold_of = {pid: i % k for i, pid in enumerate(ids)}
    return [np.array([fold_of[r.problem_id] == f for r in rows]) for f in range(k)]


def fit_estimators(rows: list[Row], probe_k: int) -> tuple[dict[str, dict[str, float]], dict[str, Any] | None, dict[str, Any]]:
    """Platt maps, the learned model, and per-estimator quality (CV log loss, correlations)."""
    y = np.array([1.0 - r.solve_rate for r in rows])  # difficulty target: P(a sample is wrong)
    w = np.array([max(r.samples, 1) for r in rows], dtype=float)
    w = w / w.mean()
    base = Policy(bins=[1.0], table={"0": BinEntry("best_of_n", 1)})
    has_pik = any(abs(r.features.get("pik", NEUTRAL) - NEUTRAL) > 1e-9 for r in rows)
    raw = {"probe": np.array([ProbeEstimator(base).raw(r.features) for r in rows])}
    if has_pik:
        raw["pik"] = np.array([PIKEstimator(base).raw(r.features) for r in rows])
    names = [f for f in LEARNED_FEATURES if np.std([r.features.get(f, NEUTRAL) for r in rows]) > 1e-9]
    x = np.array([[r.features.get(f, NEUTRAL) for f in names] for r in rows]) if names else np.zeros((len(rows), 0))

    folds = _folds(rows) if len({r.problem_id for r in rows}) >= 5 else []
    quality: dict[str, Any] = {}
    cv_pred: dict[str, np.ndarray] = {}
    for name, r_ in raw.items():
        pred = np.clip(r_, 1e-4, 1 - 1e-4).copy()
        for test in folds:
            m = _platt(r_[~test], y[~test], w[~test])
            pred[test] = sigmoid(m["a"] * logit(r_[test]) + m["b"])
        cv_pred[name] = pred
    if names:
        pred = np.full(len(rows), float(np.average(y, weights=w)))
        for test in folds:
            m = fit_standardised(names, x[~test], 1 - y[~test], w[~test])
            pred[test] = 1 - m.predict(x[test])
        cv_pred["learned"] = pred

    platt = {name: _platt(r_, y, w) for name, r_ in raw.items()}
    learned = None
    if names:
        model = fit_standardised(names, x, 1 - y, w)
        learned = model.to_dict()
    for name, pred in cv_pred.items():
        quality[name] = {"log_loss_cv": round(log_loss(pred, y, w), 5) if folds else None,
                         "spearman_cv": _r(spearman(pred, 1 - y)), "pearson_cv": _r(pearson(pred, 1 - y))}
    return platt, learned, quality


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def make_bins(d: np.ndarray, n_bins: int, min_per_bin: int) -> list[float]:
    """Upper edges at quantiles of the difficulties, merged until every bin has enough problems."""
    n_bins = max(1, min(n_bins, len(d) // max(min_per_bin, 1)))
    qs = [float(np.quantile(d, i / n_bins)) for i in range(1, n_bins)]
    edges = sorted({round(q, 6) for q in qs if q < 1.0})
    edges.append(1.0)
    while len(edges) > 1:  # merge bins that came out too small (ties at a quantile)
        counts = np.bincount(np.minimum(np.searchsorted(edges, d, side="left"), len(edges) - 1), minlength=len(edges))
        small = [i for i, c in enumerate(counts) if c < min_per_bin]
        if not small:
            break
        i = small[0]
        edges.pop(i if i < len(edges) - 1 else i - 1)
    return edges


def calibrate(paths: Iterable[str | Path], *, probe_k: int = 4, n_bins: int = 4, verifier: str | None = None,
              estimator: str | None = None, tolerance: float = 0.01, min_per_bin: int = 5,
              data_dir: str | None = None, records: list[BenchRecord] | list[dict[str, Any]] | None = None,
              manifests: list[dict[str, Any]] | None = None,
              extra_features: dict[str, dict[str, float]] | None = None) -> Calibration:
    """Fit from bench run folders `paths` (or `records`/`manifests` already read). `extra_features`:
    per problem id, features measured apart (e.g. {"pik": 0.7}) that the records do not carry."""
    paths = [str(p) for p in paths]
    if records is None:
        records, manifests = read_runs(paths)
    records = as_records(records)
    manifests = manifests or []
    if probe_k < 1:
        raise TTScaleError(f"--probe-k must be at least 1, got {probe_k}", "pass e.g. --probe-k 4")
    verifier = verifier or detect_verifier(records)
    texts = problem_texts(manifests, data_dir)
    rows = build_rows(records, texts, probe_k, verifier, extra_features)
    if len({r.problem_id for r in rows}) < 3:
        raise TTScaleError(f"calibrating needs best-of-N records of at least 3 problems with {probe_k}+ samples, "
                           f"found {len({r.problem_id for r in rows})}",
                           f"run e.g. ttscale bench --strategies best_of_n --budgets {max(probe_k, 16)} ... first")
    platt, learned, quality = fit_estimators(rows, probe_k)
    available = [e for e in ("probe", "pik", "learned") if e in quality]
    if estimator is not None:
        if estimator not in available:
            raise TTScaleError(f"estimator {estimator!r} cannot be fitted from these records",
                               f"choose one of: {', '.join(available)}")
        chosen = estimator
    else:
        # lowest cross-validated log loss; within about 0.005 of each other the simpler estimator (listed first) wins
        scored = [(round(quality[e]["log_loss_cv"] * 200) / 200, i, e) for i, e in enumerate(available)
                  if quality[e]["log_loss_cv"] is not None]
        chosen = min(scored)[2] if scored else "probe"

    policy = Policy(bins=[1.0], table={"0": BinEntry("best_of_n", 1)}, estimator=chosen, probe_k=probe_k,
                    calibration=platt, learned=learned, source="calibrate:" + ",".join(paths))
    estimators = {"probe": ProbeEstimator(policy)}
    if "pik" in platt:
        estimators["pik"] = PIKEstimator(policy)
    if learned:
        estimators["learned"] = LearnedEstimator(policy)

    per_problem: dict[str, dict[str, float]] = {}
    rates: dict[str, float] = {}
    for name, est in estimators.items():
        acc: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            acc[r.problem_id].append(est.estimate(r.features))
            rates[r.problem_id] = r.solve_rate
        per_problem[name] = {pid: float(np.mean(v)) for pid, v in acc.items()}
    for name, dd in per_problem.items():
        ids = sorted(dd)
        quality[name]["spearman"] = _r(spearman([dd[i] for i in ids], [rates[i] for i in ids]))
        quality[name]["pearson"] = _r(pearson([dd[i] for i in ids], [rates[i] for i in ids]))

    d_of = per_problem[chosen]
    ids = sorted(d_of)
    edges = make_bins(np.array([d_of[i] for i in ids]), n_bins, min_per_bin)
    policy.bins = edges
    specs = strategy_specs(records, manifests)
    policy.strategies = {label: spec for label, spec in specs.items() if spec["strategy"] != "auto"}
    policy.table = bin_table(records, d_of, policy, tolerance)
    policy.fit = {"records": paths, "problems": len(ids), "rows": len(rows), "probe_k": probe_k,
                  "verifier": verifier, "estimator": chosen, "estimators": quality,
                  "bin_problems": {k: e.problems for k, e in policy.table.items()}}
    return Calibration(policy, rows, per_problem, policy.fit)


def bin_table(records: list[BenchRecord], d_of: dict[str, float], policy: Policy, tolerance: float) -> dict[str, BinEntry]:
    cells: dict[tuple[int, str, int], list[tuple[bool, float]]] = defaultdict(list)
    problems_in: dict[int, set[str]] = defaultdict(set)
    for r in records:
        pid = str(r.problem_id)
        if r.strategy == "auto" or pid not in d_of:
            continue
        b = policy.bin_of(d_of[pid])
        problems_in[b].add(pid)
        cells[(b, r.label, int(r.budget))].append((r.correct, r.spent("generated_tokens")))
    table: dict[str, BinEntry] = {}
    for b in range(len(policy.bins)):
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        tokens: dict[str, dict[int, float]] = defaultdict(dict)
        for (bb, label, budget), vals in cells.items():
            if bb == b:
                curves[label][budget] = float(np.mean([ok for ok, _ in vals]))
                tokens[label][budget] = float(np.mean([t for _, t in vals]))
        if not curves:  # no measurement for this bin: the default model's curve
            fallback = DEFAULT_POLICY.entry(min(b, len(DEFAULT_POLICY.bins) - 1))
            table[str(b)] = BinEntry(fallback.strategy, fallback.budget, {}, dict(fallback.curves), {}, 0)
            continue
        n = len(problems_in[b])
        best = max(v for c in curves.values() for v in c.values())
        slack = max(tolerance, math.sqrt(max(best * (1 - best), 1e-9) / max(n, 1)) if tolerance > 0 else 0.0)
        options = [(tokens[lab].get(bud, 0.0), bud, lab) for lab, c in curves.items() for bud, v in c.items()
                   if v >= best - slack]
        _, budget, label = min(options)
        table[str(b)] = BinEntry(label, int(budget), {}, dict(curves), dict(tokens), n)
    return table


def summary_lines(cal: Calibration) -> list[str]:
    p = cal.policy
    out = [f"fitted on {p.fit['problems']} problems ({p.fit['rows']} probe rows, k={p.probe_k}, "
           f"verifier {p.fit['verifier'] or 'none'}); estimator: {p.estimator}"]
    for name, q in p.fit["estimators"].items():
        out.append(f"  {name:8s} spearman(difficulty, solve rate) {q.get('spearman')}  "
                   f"cross-validated: spearman {q.get('spearman_cv')}  log loss {q.get('log_loss_cv')}")
    lo = 0.0
    for i, edge in enumerate(p.bins):
        e = p.entry(i)
        accs = ", ".join(f"{lab}@{b}={v:.2f}" for lab, c in e.curves.items() for b, v in sorted(c.items()))
        out.append(f"  bin {i} (difficulty {lo:.2f}-{edge:.2f}, {e.problems} problems): {e.strategy}@{e.budget}   [{accs}]")
        lo = edge
    return out


def write_policy(cal: Calibration, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cal.policy.save(out)
    json.loads(out.read_text())  # written whole and valid
    return out
