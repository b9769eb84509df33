"""The allocation benchmark's verdicts over several of its folders together (more problems, narrower intervals).

    python benchmarks/allocation_pooled.py --policy ttscale/lab/arith/policy.json runs/allocation-v16h runs/allocation-s1

Each folder is one run of benchmarks/allocation.py (its own problems: another --eval-seed or --dataset).
Problems stay apart by folder; auto's runs are those of --policy (its digest names them in OUT/auto/).
Prints, per budget: auto and the best uniform strategy (accuracy, tokens per problem), both verdicts
(at <= tokens, and at auto's own tokens), and auto minus the best uniform paired over problems [95% CI].
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import allocation  # noqa: E402  (this folder's benchmark: its cells and verdicts)


def pooled(folders: list[Path], digest: str) -> tuple[dict, dict]:
    """Uniform and auto cells over all folders, problem ids prefixed by their folder."""
    records, runs = [], []
    for folder in folders:
        for line in (folder / "eval" / "records.jsonl").read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r["label"] in allocation.BASELINES:
                    records.append({**r, "problem_id": f"{folder.name}:{r['problem_id']}"})
        found = sorted((folder / "auto").glob(f"*_{digest}.json"))
        if not found:
            raise SystemExit(f"{folder}: no auto runs of this policy (digest {digest}); run benchmarks/allocation.py "
                             f"--policy with it and --out {folder} first")
        for path in found:
            run = json.loads(path.read_text())
            run["problems"] = [{**x, "id": f"{folder.name}:{x['id']}"} for x in run["problems"]]
            runs.append(run)
    return allocation.uniform_cells(records), allocation.auto_cells(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--policy", required=True, help="the policy whose auto runs to read")
    args = ap.parse_args()
    from ttscale.allocate import load_policy

    policy = load_policy(args.policy)
    uniform, auto = pooled(args.folders, allocation.policy_digest(policy))
    problems = len(next(iter(auto.values()))["per_problem"]) if auto else 0
    print(f"pooled over {', '.join(str(f) for f in args.folders)}: {problems} problems")
    for budget, w in allocation.verdicts(uniform, auto).items():
        p = w["paired"]
        print(f"@{budget}: auto {w['auto_accuracy']:.3f} ({w['auto_tokens']:,.0f} tokens) vs {w['best_uniform']} "
              f"{w['best_uniform_accuracy']:.3f} ({w['best_uniform_tokens']:,.0f}); at <= tokens "
              f"{'yes' if w['auto_wins'] else 'no'}; at auto's tokens {'yes' if w['auto_wins_at_equal_tokens'] else 'no'} "
              f"(vs {w['best_at_equal_tokens']} {w['best_at_equal_tokens_accuracy']:.3f}); paired "
              f"{p['difference']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]")


if __name__ == "__main__":
    main()
