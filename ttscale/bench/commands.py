"""The `ttscale bench` and `ttscale report` commands, registered onto the main typer app.

Kept apart from ttscale/cli.py so bench grows without touching the solve command; `register(app)` is
the only coupling. Errors are TTScaleError, which the CLI's main prints as one line (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ttscale.errors import TTScaleError


def bench(
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="YAML recipe (see recipes/); flags below override its fields."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="math500 | aime24 | aime25 | amc23 | gsm8k | arith | a plugin's name | path/to/file.jsonl (rows with id, problem, answer)."),
    strategies: Optional[str] = typer.Option(None, "--strategies", "-s", help="Comma-separated, e.g. best_of_n,particle,beam."),
    budgets: Optional[str] = typer.Option(None, "--budgets", "-b", help="Comma-separated positive integers, e.g. 1,4,16,64."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated, e.g. 0,1,2 (default 0)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (records, manifest, report). Default: runs/<recipe name>."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N problems (after --offset)."),
    offset: Optional[int] = typer.Option(None, "--offset", help="Skip the first N problems (after --levels), e.g. to split a set over runs."),
    levels: Optional[str] = typer.Option(None, "--levels", help="Difficulty levels to keep, e.g. 1,2,3 (math500, arith)."),
    n: Optional[int] = typer.Option(None, "--n", help="Generated sets (arith): how many problems to generate."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with the JSONL sets (default: $TTSCALE_DATA_DIR)."),
    split: Optional[str] = typer.Option(None, "--split", help="Sets with splits: arith train (default) | heldout (sentence structures the lab model never saw)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="GGUF file, HF folder or id, lab:arith (default: embedded SmolLM2-135M)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="llamacpp | vllm | openai | transformers"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible server for --backend openai (key: $TTSCALE_API_KEY)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer for --backend openai."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="--backend openai: seconds for one HTTP attempt (default 120)."),
    retries: Optional[int] = typer.Option(None, "--retries", help="--backend openai: retries after a failed attempt (default 2)."),
    context_length: Optional[int] = typer.Option(None, "--context-length"),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="Process verifier of step-level strategies (arith_steps | self_judge | prm)."),
    prm_model: Optional[str] = typer.Option(None, "--prm-model", help="HF id or folder of the PRM for the prm verifier (e.g. lab:arith-prm)."),
    prm_engine: Optional[str] = typer.Option(None, "--prm-engine", help="transformers | vllm, for the prm verifier (default transformers)."),
    prm_format: Optional[str] = typer.Option(None, "--prm-format", help="auto | qwen | shepherd, for the prm verifier (default auto)."),
    opt: list[str] = typer.Option([], "--opt", help="Strategy option key=value (repeatable), set on every strategy that takes it; LABEL.key=value for one line."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="System message before each problem (default: the model's own, if any)."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable); backslash escapes such as \\n are decoded."),
    log_samples: bool = typer.Option(False, "--log-samples", help="Keep every candidate's text in the records (larger files)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Per candidate."),
    max_inflight: Optional[int] = typer.Option(None, "--max-inflight", help="Candidates kept in flight in one scheduler (batch size)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="--backend llamacpp / transformers: CPU threads (default llamacpp: the cores idle when the model loads; with --ray, --ray-cpus-per-actor)."),
    no_subsample: bool = typer.Option(False, "--no-subsample", help="Run every best-of-N budget instead of cutting small N from the largest."),
    force: bool = typer.Option(False, "--force", help="Accept a changed config in an existing run folder."),
    use_ray: bool = typer.Option(False, "--ray", help="Shard problems over actors of a local Ray instance."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join a Ray cluster (e.g. HEAD:6379 or ray://HEAD:10001)."),
    ray_actors: Optional[int] = typer.Option(None, "--ray-actors", help="Actors (default: one per GPU, else one per --ray-cpus-per-actor cores)."),
    ray_cpus: int = typer.Option(1, "--ray-cpus-per-actor", help="CPU cores per actor (llama.cpp threads)."),
    ray_gpus: Optional[float] = typer.Option(None, "--ray-gpus-per-actor", help="GPUs per actor (default 1 when the cluster has GPUs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let the libraries' own log lines through (vLLM, transformers); by default only errors."),
) -> None:
    """Run a compute-vs-accuracy grid; resumable (rerun the same command), records appended as they finish."""
    from ttscale.logs import quiet_libraries

    quiet_libraries(verbose)
    from ttscale.backends.threads import check_threads
    from ttscale.bench.ray_exec import RaySettings
    from ttscale.bench.recipe import parse_int_list, resolve_config
    from ttscale.bench.run import run_bench
    from ttscale.inputs import unescape
    from ttscale.stdio import stdout_to_stderr
    from ttscale.strategies.options import parse_cli

    if timeout is not None and not timeout > 0:
        raise TTScaleError(f"--timeout must be positive, got {timeout}", "pass e.g. --timeout 120")
    if retries is not None and retries < 0:
        raise TTScaleError(f"--retries must be 0 or more, got {retries}", "pass e.g. --retries 2")
    for flag, value in (("--limit", limit), ("--n", n), ("--max-tokens", max_tokens), ("--max-inflight", max_inflight),
                        ("--ray-actors", ray_actors), ("--ray-cpus-per-actor", ray_cpus)):
        if value is not None and value < 1:
            raise TTScaleError(f"{flag} must be a positive integer, got {value}", f"pass {flag} 1 or more")
    if offset is not None and offset < 0:
        raise TTScaleError(f"--offset must be 0 or more, got {offset}", "pass --offset 100 to skip the first 100 problems")
    flags = {
        "dataset": dataset, "limit": limit, "n": n, "data_dir": data_dir, "split": split, "model": model, "backend": backend,
        "base_url": base_url, "tokenizer": tokenizer, "context_length": context_length, "verifier": verifier,
        "timeout_s": timeout, "retries": retries, "offset": offset,
        "prm_model": prm_model, "prm_engine": prm_engine, "prm_format": prm_format,
        "system_prompt": system_prompt, "stop": [unescape(s) for s in stop] or None,
        "log_samples": True if log_samples else None,
        "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "max_inflight": max_inflight,
        "strategies": [s.strip() for s in strategies.split(",") if s.strip()] if strategies is not None else None,
        "budgets": parse_int_list("--budgets", budgets, minimum=1) if budgets is not None else None,
        "seeds": parse_int_list("--seeds", seeds, minimum=0) if seeds is not None else None,
        "levels": parse_int_list("--levels", levels, minimum=0) if levels is not None else None,
        "subsample_best_of_n": False if no_subsample else None, "threads": threads,
    }
    notes: list[str] = []
    config = resolve_config(recipe, flags, parse_cli(opt), notes)
    check_threads(config.backend_options.get("threads"), config.backend)  # a recipe's threads too
    if (timeout is not None or retries is not None) and config.backend != "openai":
        raise TTScaleError("--timeout and --retries are for --backend openai", "drop them or add --backend openai")
    if out is None:
        if not config.name:
            raise TTScaleError("no output folder given", "pass --out runs/NAME")
        out = Path("runs") / config.name
    ray = None
    if use_ray or ray_address:
        ray = RaySettings(address=ray_address, actors=ray_actors, cpus_per_actor=ray_cpus, gpus_per_actor=ray_gpus)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    with stdout_to_stderr():
        summary = run_bench(config, out, force=force, ray=ray, console=console, progress=not quiet, argv=sys.argv[1:])
    print(summary.line())


def report(
    run_dir: Path = typer.Argument(..., help="A bench run folder (its --out)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Tables only."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the 95% intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json instead of tables."),
) -> None:
    """Tables (accuracy with 95% CIs, maj@k, pass@k, tokens and seconds per problem, by level) and PNG plots."""
    from ttscale.bench.report import build_report, rich_tables, write_report

    if bootstrap < 0:
        raise TTScaleError(f"--bootstrap must be 0 or more, got {bootstrap}", "pass e.g. --bootstrap 2000")
    rep = build_report(run_dir, n_boot=bootstrap)
    written = write_report(rep, with_plots=not no_plots)
    if as_json:
        print((run_dir / "report.json").read_text(encoding="utf-8"), end="")
        return
    console = Console(width=max(Console().width, 140), highlight=False)
    for table in rich_tables(rep):
        console.print(table)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for note in rep.notes:
        err.print(f"note: {note}", markup=False)
    err.print("wrote " + ", ".join(str(p) for p in written), markup=False)


def register(app: typer.Typer) -> None:
    """Add `bench` and `report` to the `ttscale` app."""
    app.command("bench")(bench)
    app.command("report")(report)
