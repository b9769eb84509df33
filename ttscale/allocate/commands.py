"""`ttscale calibrate`, registered onto the main typer app (like bench's commands)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from ttscale.errors import TTScaleError


def calibrate(
    records: List[Path] = typer.Option(..., "--records", "-r", help="A bench run folder (its --out) or records.jsonl; repeat for several."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the policy JSON (use it with --strategy auto --policy FILE)."),
    probe_k: int = typer.Option(4, "--probe-k", help="Probe samples per prompt the policy is fitted for."),
    bins: int = typer.Option(4, "--bins", help="Difficulty bins (fewer when there are too few problems)."),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="Verifier feature: the scores key of best-of-N candidates (default: detected)."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="probe | pik | learned (default: the lowest cross-validated log loss)."),
    tolerance: float = typer.Option(0.01, "--tolerance", help="A bin's choice: the cheapest cell within this accuracy of its best."),
    min_per_bin: int = typer.Option(5, "--min-per-bin", help="Fewest problems per difficulty bin."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Where the dataset files are (prompt-length feature)."),
    pik: bool = typer.Option(False, "--pik", help="Also ask the runs' model P(IK) of every problem (loads the model), so the pik and learned estimators can use it."),
    backend: Optional[str] = typer.Option(None, "--backend", help="With --pik: the backend to load the model on (default: the runs')."),
    as_json: bool = typer.Option(False, "--json", help="Print the fit report as JSON."),
) -> None:
    """Fit difficulty estimators and the allocation policy (bins -> strategy, budget) from bench records."""
    import json

    from ttscale.allocate.calibrate import calibrate as fit, pik_features, read_runs, summary_lines, write_policy

    for flag, value in (("--bins", bins), ("--min-per-bin", min_per_bin)):
        if value < 1:
            raise TTScaleError(f"{flag} must be at least 1, got {value}", f"pass {flag} 1 or more")
    if not 0 <= tolerance < 1:
        raise TTScaleError(f"--tolerance must be in [0, 1), got {tolerance}", "pass e.g. --tolerance 0.01")
    runs, manifests = read_runs(records)
    extra = None
    if pik:
        if not manifests:
            raise TTScaleError("--pik needs the runs' manifest.json (which model, which problems)",
                               "pass `ttscale bench --out` folders, or calibrate without --pik")
        extra = pik_features(manifests, data_dir=data_dir, backend=backend)
    cal = fit(records, probe_k=probe_k, n_bins=bins, verifier=verifier, estimator=estimator, tolerance=tolerance,
              min_per_bin=min_per_bin, data_dir=data_dir, records=runs, manifests=manifests, extra_features=extra)
    path = write_policy(cal, out)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(cal.report))
    else:
        for line in summary_lines(cal):
            print(line)
    err.print(f"wrote {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
