"""The allocation benchmark's verdicts over several of its folders together (more problems, narrower intervals).

    python benchmarks/allocation_pooled.py --policy ttscale/lab/arith/policy.json runs/allocation-v16h runs/allocation-s1

Each folder is one run of benchmarks/allocation.py (its own problems: another --eval-seed or --dataset),
done with --policy and the same budgets and seeds. Problems stay apart by folder; auto's runs are those
of --policy (its digest names them in OUT/auto/). Prints, per budget, the verdicts summary.md prints:
auto against the best uniform strategy at <= tokens and at auto's own tokens, and auto minus the best
uniform paired over problems [95% CI].
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import allocation  # noqa: E402  (this folder's benchmark: its cells and verdicts)


def pooled(folders: list[Path], digest: str) -> tuple[dict[str, dict[int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Uniform and auto cells over all folders, each problem id prefixed by its folder's place in the list.
    Every folder must hold this policy's auto runs at the same (budget, seed) pairs: a pair one folder
    lacks would compare auto on fewer problems than the uniform cells."""
    from ttscale.bench.records import read_records

    if len({f.resolve() for f in folders}) < len(folders):
        raise SystemExit("error: a folder is given twice; pass each benchmark folder once")
    records, runs, pairs = [], [], {}
    for i, folder in enumerate(folders):
        found = sorted((folder / "auto").glob(f"*_{digest}.json"))
        if not (folder / "eval" / "records.jsonl").is_file() or not found:
            raise SystemExit(f"error: {folder}: no uniform records or no auto runs of this policy (digest {digest}); "
                             f"run benchmarks/allocation.py --policy with it and --out {folder} first")
        mine = [json.loads(path.read_text()) for path in found]
        pairs[folder] = {(r["budget"], r["seed"]) for r in mine}
        for run in mine:
            runs.append({**run, "problems": [{**x, "id": f"{i}:{x['id']}"} for x in run["problems"]]})
        budgets = {b for b, _ in pairs[folder]}
        records += [{**r, "problem_id": f"{i}:{r['problem_id']}"} for r in read_records(folder / "eval" / "records.jsonl").records
                    if r["label"] in allocation.BASELINES and int(r["budget"]) in budgets]
    if len({frozenset(p) for p in pairs.values()}) > 1:
        raise SystemExit("error: the folders' auto runs differ in budgets or seeds: "
                         + "; ".join(f"{f}: {sorted(p)}" for f, p in pairs.items()))
    return allocation.uniform_cells(records), allocation.auto_cells(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--policy", required=True, help="the policy whose auto runs to read")
    args = ap.parse_args()
    from ttscale.allocate import load_policy

    uniform, auto = pooled(args.folders, allocation.policy_digest(load_policy(args.policy)))
    problems = len(next(iter(auto.values()))["per_problem"]) if auto else 0
    print(f"pooled over {', '.join(str(f) for f in args.folders)}: {problems} problems")
    for line in allocation.verdict_lines(allocation.verdicts(uniform, auto)):
        print(line)


if __name__ == "__main__":
    main()
