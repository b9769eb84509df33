"""`ttscale` command line: solve one problem (more commands join as they are built).

Errors a user can cause print as one line and exit with code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from ttscale.stdio import stdout_to_stderr  # noqa: F401  (used by bench too)
from ttscale.errors import TTScaleError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Test-time compute scaling for LLM reasoning.")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from ttscale import __version__

        print(f"ttscale {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Test-time compute scaling for LLM reasoning."""


def backend_options(backend: str, base_url: Optional[str], api_key: Optional[str], tokenizer: Optional[str],
                    n_ctx: Optional[int], chat_api: bool = False, gpu_memory: Optional[float] = None,
                    timeout: Optional[float] = None, retries: Optional[int] = None) -> dict[str, Any]:
    """Flags that only some backends take, passed through only when given."""
    opts: dict[str, Any] = {}
    if (timeout is not None or retries is not None) and backend != "openai":
        raise TTScaleError("--timeout and --retries are for --backend openai", "drop them or add --backend openai")
    if timeout is not None and not timeout > 0:
        raise TTScaleError(f"--timeout must be positive, got {timeout}", "pass e.g. --timeout 120")
    if retries is not None and retries < 0:
        raise TTScaleError(f"--retries must be 0 or more, got {retries}", "pass e.g. --retries 2")
    if backend == "openai":
        if not base_url:
            raise TTScaleError("--backend openai needs --base-url", "e.g. --base-url http://127.0.0.1:8000/v1")
        opts["base_url"] = base_url
        if timeout is not None:
            opts["timeout_s"] = timeout
        if retries is not None:
            opts["retries"] = retries
        if api_key:
            opts["api_key"] = api_key
        if tokenizer:
            opts["tokenizer"] = tokenizer
        if chat_api:
            opts["chat"] = True
    elif base_url or chat_api:
        raise TTScaleError(f"--base-url and --chat-api are for --backend openai, not {backend}", "add --backend openai or drop them")
    if n_ctx:
        opts["context_length"] = n_ctx
    if gpu_memory is not None:
        if backend != "vllm":
            raise TTScaleError("--gpu-memory-utilization is for --backend vllm", "drop it or add --backend vllm")
        opts["gpu_memory_utilization"] = gpu_memory
    return opts


DTYPES = ("auto", "float16", "bfloat16", "float32")


def load_options(backend: str, gpu_layers: Optional[int] = None, tensor_parallel_size: Optional[int] = None,
                 dtype: Optional[str] = None, chat_template: Optional[str] = None) -> dict[str, Any]:
    """How the model is loaded: each flag only for the backends that take it, checked before a model loads."""
    from ttscale.backends.chat_template import TEMPLATE_BACKENDS, load_chat_template

    opts: dict[str, Any] = {}
    if gpu_layers is not None:
        if backend != "llamacpp":
            raise TTScaleError(f"--gpu-layers is for --backend llamacpp, not {backend}", "drop it or add --backend llamacpp")
        if gpu_layers < -1:
            raise TTScaleError(f"--gpu-layers must be -1 (all) or 0 or more, got {gpu_layers}", "pass e.g. --gpu-layers -1")
        opts["gpu_layers"] = gpu_layers
    if tensor_parallel_size is not None:
        if backend != "vllm":
            raise TTScaleError(f"--tensor-parallel-size is for --backend vllm, not {backend}", "drop it or add --backend vllm")
        if tensor_parallel_size < 1:
            raise TTScaleError(f"--tensor-parallel-size must be 1 or more, got {tensor_parallel_size}",
                               "pass the number of GPUs, e.g. --tensor-parallel-size 2")
        opts["tensor_parallel_size"] = tensor_parallel_size
    if dtype is not None:
        if backend not in ("vllm", "transformers"):
            raise TTScaleError(f"--dtype is for --backend vllm or transformers, not {backend}",
                               "drop it (a GGUF fixes its own precision) or pick one of those backends")
        if dtype not in DTYPES:
            raise TTScaleError(f"unknown --dtype {dtype!r}", f"choose one of: {', '.join(DTYPES)}")
        opts["dtype"] = dtype
    if chat_template is not None:
        if backend not in TEMPLATE_BACKENDS:
            raise TTScaleError(f"--chat-template is for --backend {' or '.join(TEMPLATE_BACKENDS)}, not {backend}",
                               "drop it, or use --chat-api with --backend openai to let the server template")
        opts["chat_template"] = load_chat_template(chat_template)  # a bad path or template: one line, now
    return opts


@app.command()
def solve(
    problem: Optional[str] = typer.Argument(None, help="The problem text, or - to read problems from stdin (one per line, or JSONL with a \"problem\" field)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Read problems from a file: one per line, or JSONL with a \"problem\" field (and optional \"id\")."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="System message before each problem (default: the model's own, if any)."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable); backslash escapes such as \\n are decoded."),
    chat_template: Optional[str] = typer.Option(None, "--chat-template", help="A Jinja chat template (file or text) instead of the model's (every backend; not with --chat-api)."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", help="--backend llamacpp: layers offloaded to the GPU (-1: all)."),
    tensor_parallel_size: Optional[int] = typer.Option(None, "--tensor-parallel-size", help="--backend vllm: GPUs the model is split over."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="--backend vllm / transformers: auto | float16 | bfloat16 | float32."),
    strategy: str = typer.Option("best_of_n", "--strategy", "-s", help="Strategy name (see `ttscale strategies`)."),
    budget: int = typer.Option(8, "--budget", "-b", help="Complete candidate solutions to spend."),
    backend: str = typer.Option("llamacpp", "--backend", help="llamacpp | vllm | openai | transformers"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model: GGUF file, HF folder or id, lab:arith. Default: embedded SmolLM2-135M-Instruct."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TTSCALE_API_KEY", help="Bearer token for --base-url."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer (HF id/folder or GGUF) for --backend openai."),
    n_ctx: Optional[int] = typer.Option(None, "--context-length", help="Context length to load the model with."),
    chat_api: bool = typer.Option(False, "--chat-api", help="--backend openai: send fresh prompts to /v1/chat/completions (the server's template)."),
    gpu_memory: Optional[float] = typer.Option(None, "--gpu-memory-utilization", help="--backend vllm on a GPU: share of GPU memory for the policy (leave room for a PRM)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="--backend openai: seconds for one HTTP attempt, whole reply included (default 120)."),
    retries: Optional[int] = typer.Option(None, "--retries", help="--backend openai: retries after a failed or timed-out attempt (default 2)."),
    seed: int = typer.Option(0, "--seed"),
    temperature: float = typer.Option(0.8, "--temperature", "-t"),
    top_p: float = typer.Option(1.0, "--top-p"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Per candidate (default from the model)."),
    aggregate: Optional[str] = typer.Option(None, "--aggregate", help="majority | weighted | top (default: majority for best_of_n, top for search)"),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Best-of-N: verifier that scores whole candidates for weighted/top."),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="Step-level search, parallel_thinking, refine, auto: process verifier (arith_steps | self_judge | prm | none; default arith_steps)."),
    prm_model: Optional[str] = typer.Option(None, "--prm-model", help="HF id or folder of the PRM for --verifier prm."),
    prm_engine: str = typer.Option("transformers", "--prm-engine", help="transformers | vllm, for --verifier prm."),
    prm_format: str = typer.Option("auto", "--prm-format", help="auto | qwen | shepherd, for --verifier prm."),
    step_aggregate: Optional[str] = typer.Option(None, "--step-aggregate", help="Step scores -> path score: last | min | prod | mean (default: last for step search, min for parallel_thinking / refine verdicts)."),
    beam_width: Optional[int] = typer.Option(None, "--beam-width", help="beam / dvts: expansions per kept beam (M)."),
    step_delimiter: Optional[str] = typer.Option(None, "--step-delimiter", help="Text that ends a step (default: the model's, else a blank line)."),
    ess_threshold: Optional[float] = typer.Option(None, "--ess-threshold", help="particle: resample when ESS < this x N (default: every round)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Step-level search: most steps per solution (default 32)."),
    step_tokens: Optional[int] = typer.Option(None, "--step-tokens", help="Step-level search: most tokens per step (default 256)."),
    temperatures: Optional[str] = typer.Option(None, "--temperatures", help="temperature / best_of_n / particle: sampling temperature grid, e.g. 0.3,0.6,0.9,1.2."),
    temperature_shares: Optional[str] = typer.Option(None, "--temperature-shares", help="Share of the budget per grid temperature, e.g. 1,1,2,1 (default equal)."),
    wave_size: Optional[int] = typer.Option(None, "--wave-size", help="temperature: samples per wave (default one per grid temperature)."),
    early_exit: Optional[bool] = typer.Option(None, "--early-exit/--no-early-exit", help="temperature: stop once the vote's winner is certain."),
    paths: Optional[int] = typer.Option(None, "--paths", help="parallel_thinking: K reasoning paths (default budget - 1; K + 1 <= budget)."),
    synthesis_prompt: Optional[str] = typer.Option(None, "--synthesis-prompt", help="parallel_thinking: synthesis prompt with {problem}, {k} and {paths}."),
    fallback: Optional[bool] = typer.Option(None, "--fallback/--no-fallback", help="parallel_thinking: use the paths' majority when the synthesis answer is not among them or fails the verifier."),
    width: Optional[int] = typer.Option(None, "--width", help="refine: parallel chains (width x turns <= budget)."),
    turns: Optional[int] = typer.Option(None, "--turns", help="refine: attempts per chain, the first included (default budget / width)."),
    accept_threshold: Optional[float] = typer.Option(None, "--accept-threshold", help="parallel_thinking / refine: verifier score that accepts a solution (default 0.5)."),
    feedback_prompt: Optional[str] = typer.Option(None, "--feedback-prompt", help="refine: the verdict turn, with {score}, {hint}, {answer}, {problem}."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with candidates, votes and usage."),
    policy: Optional[str] = typer.Option(None, "--policy", help="--strategy auto: policy JSON from `ttscale calibrate`, or `default` for the built-in one (default: the one the model ships, else built-in)."),
    opt: list[str] = typer.Option([], "--opt", help="Any option of the strategy as key=value (repeatable), e.g. --opt weight_temperature=0.5; `ttscale strategies` lists them."),
    threads: Optional[int] = typer.Option(None, "--threads", help="--backend llamacpp / transformers: CPU threads (default llamacpp: the cores idle when the model loads)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display on stderr while it runs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let the libraries' own log lines through (vLLM, transformers); by default only errors."),
) -> None:
    """Solve one problem (or many from --file / stdin); answers go to stdout, what was spent to stderr."""
    from ttscale.logs import quiet_libraries

    quiet_libraries(verbose)
    from ttscale.backends.threads import check_threads
    from ttscale.engine import Engine, check_budget
    from ttscale.inputs import gather_problems, unescape
    from ttscale.progress import solve_progress
    from ttscale.scoring import scorers
    from ttscale.strategies import strategies
    from ttscale.strategies.options import options_class, parse_cli, parse_options

    strategies.get(strategy)  # fail on a typo before loading a model
    check_budget(budget)
    flags = {"scorer": scorer, "verifier": verifier, "beam_width": beam_width, "step_aggregate": step_aggregate,
             "early_exit": early_exit, "fallback": fallback, "temperatures": temperatures,
             "temperature_shares": temperature_shares, "wave_size": wave_size, "paths": paths,
             "synthesis_prompt": synthesis_prompt, "width": width, "turns": turns,
             "accept_threshold": accept_threshold, "feedback_prompt": feedback_prompt, "aggregate": aggregate,
             "ess_threshold": ess_threshold, "max_steps": max_steps, "step_tokens": step_tokens}
    options: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}  # only what was given
    options.update(parse_cli(opt))
    if step_delimiter:
        options["step_delimiter"] = step_delimiter.encode().decode("unicode_escape")  # "\n\n" from a shell
    if policy:
        from ttscale.allocate import load_policy

        options["policy"] = load_policy(policy)  # a bad file fails here, before a model loads
    parse_options(strategy, options_class(strategy), options)  # a misspelt or misplaced option: one line
    for key in ("verifier", "scorer"):
        if options.get(key) not in (None, "none", "logprob"):
            scorers.get(str(options[key]))  # an unknown verifier, before the model loads
    if "prm" in (options.get("verifier"), options.get("scorer")) and not prm_model:
        raise TTScaleError("the prm verifier needs a model", "pass --prm-model, e.g. --prm-model lab:arith-prm "
                           "or Qwen/Qwen2.5-Math-PRM-7B")
    verifier_options = {"prm": {"model": prm_model, "engine": prm_engine, "format": prm_format}} if prm_model else {}
    opts = backend_options(backend, base_url, api_key, tokenizer, n_ctx, chat_api, gpu_memory, timeout, retries)
    opts.update(load_options(backend, gpu_layers, tensor_parallel_size, dtype, chat_template))
    if chat_template is not None and chat_api:
        raise TTScaleError("a chat template cannot apply with --chat-api: the server renders the messages",
                           "drop --chat-template, or drop --chat-api to render prompts here")
    if check_threads(threads, backend) is not None:
        opts["threads"] = threads
    stops = [unescape(s) for s in stop]
    problems = gather_problems(problem, file)  # a missing file or bad JSONL line: one line, before the load
    many = file is not None or problem == "-"  # from a file or stdin: one output line per problem
    with stdout_to_stderr(), Engine(backend=backend, model=model, verifier_options=verifier_options, **opts) as engine, \
            solve_progress(engine, err, enabled=not quiet):  # tokens, tok/s and samples on stderr as they come
        if many:
            results = engine.solve_batch([p.text for p in problems], strategy=strategy, budget=budget, seed=seed,
                                         temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stops,
                                         system_prompt=system_prompt, **options)
        else:
            result = engine.solve(problems[0].text, strategy=strategy, budget=budget, seed=seed,
                                  temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stops,
                                  system_prompt=system_prompt, **options)
    if many:
        _print_batch(problems, results, as_json, engine)
        return
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    print(result.answer if result.answer is not None else "(no answer)")
    how = result.details.get("aggregate", "majority")
    counted = how == "majority"  # weighted / top: the tally holds summed or best scores, not vote counts
    tally = ", ".join((f"{a} x{v:g}" if counted else f"{a} {v:.3g}")
                      for a, v in sorted(result.votes.items(), key=lambda kv: -kv[1]))
    u = result.ledger
    label = "votes" if counted else f"{how} scores"
    tie = result.details.get("tie")  # say when a tie-break rule, not the vote, chose the answer
    err.print(f"{label}: {tally or '(no candidate had an answer)'}  confidence {result.confidence:.2f}"
              + (f"  ({tie['message']})" if tie else ""), markup=False)
    err.print(
        f"spent: {u.candidates} candidates, {u.generated_tokens} generated tokens, {u.prompt_tokens} prompt tokens "
        f"({u.cached_prompt_tokens} cached), {u.backend_calls} backend call(s), {u.wall_seconds:.1f} s "
        f"[backend {engine.backend.name}, model {engine.backend.model}]", markup=False,
    )


def _print_batch(problems: list[Any], results: list[Any], as_json: bool, engine: Any) -> None:
    """One stdout line per problem, in input order (an answer, or a JSON object with the input's id);
    one stderr line for what the whole batch spent."""
    for p, r in zip(problems, results):
        if as_json:
            print(json.dumps({**({"id": p.id} if p.id is not None else {}), **r.to_dict()}, ensure_ascii=False))
        else:
            print(" ".join(r.answer.splitlines()) if r.answer is not None else "(no answer)")
    u = engine.last_batch_usage
    if u is not None:
        err.print(f"spent on {len(results)} problem(s): {u.candidates} candidates, {u.generated_tokens} generated "
                  f"tokens, {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} cached), {u.backend_calls} "
                  f"backend call(s), {u.wall_seconds:.1f} s [backend {engine.backend.name}, model {engine.backend.model}]",
                  markup=False)


@app.command()
def serve(
    ctx: typer.Context,
    backend: str = typer.Option("llamacpp", "--backend", help="llamacpp | vllm | openai | transformers"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the embedded SmolLM2-135M-Instruct)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TTSCALE_SERVE_API_KEY",
                                          help="Require 'Authorization: Bearer KEY' on every route but /health (/v1/models too)."),
    served_model_name: Optional[str] = typer.Option(None, "--served-model-name", help="The model name /v1/models lists and replies carry (default ttscale/MODEL); a request naming another model (other than 'ttscale') gets a 404."),
    strategy: str = typer.Option("best_of_n", "--strategy", "-s", help="Strategy for requests whose ttscale block names none (see `ttscale strategies`)."),
    budget: int = typer.Option(4, "--budget", "-b", help="Budget for requests whose ttscale block gives none (at most --max-budget)."),
    max_budget: int = typer.Option(64, "--max-budget", help="Largest ttscale.budget a request may ask for."),
    max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Upstream server for --backend openai."),
    upstream_api_key: Optional[str] = typer.Option(None, "--upstream-api-key", envvar="TTSCALE_API_KEY",
                                                   help="--backend openai: Bearer token for the upstream --base-url (not this server's --api-key)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="--backend openai: the upstream model's tokenizer (HF id/folder or GGUF)."),
    n_ctx: Optional[int] = typer.Option(None, "--context-length"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="--backend openai: seconds for one HTTP attempt, whole reply included (default 120)."),
    retries: Optional[int] = typer.Option(None, "--retries", help="--backend openai: retries after a failed or timed-out attempt (default 2)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Let the libraries' own log lines through (vLLM, transformers); by default only errors."),
) -> None:
    """Serve POST /v1/chat/completions (OpenAI format, stream=true too) with test-time scaling from the `ttscale` body field."""
    from ttscale.engine import Engine
    from ttscale.logs import quiet_libraries
    from ttscale.serve import check_defaults, run_server

    quiet_libraries(verbose)

    if max_budget < 1:
        raise TTScaleError(f"--max-budget must be at least 1, got {max_budget}", "pass e.g. --max-budget 64")
    check_defaults(strategy, budget, max_budget)  # check_budget, strategies.get: a typo fails before a model loads
    if served_model_name is not None and not served_model_name.strip():
        raise TTScaleError("--served-model-name is empty", "pass a name, e.g. --served-model-name ttscale")
    given = getattr(ctx.get_parameter_source("upstream_api_key"), "name", "")  # from the env: may be for solve
    if backend != "openai" and (tokenizer or given == "COMMANDLINE" and upstream_api_key):
        raise TTScaleError(f"--tokenizer and --upstream-api-key are for --backend openai, not {backend}",
                           "drop them or add --backend openai")
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        err.print(f"warning: serving on {host} without --api-key: anyone who can reach this address can spend "
                  "your compute; pass --api-key KEY", markup=False)
    _check_port_free(host, port)
    opts = backend_options(backend, base_url, upstream_api_key, tokenizer, n_ctx, timeout=timeout, retries=retries)
    engine = Engine(backend=backend, model=model, **opts)
    name = served_model_name or f"ttscale/{engine.backend.model}"
    err.print(f"ttscale serving {name} on http://{host}:{port}/v1 (auth {'on' if api_key else 'off'}; "
              f"default {strategy}, budget {budget}, max {max_budget})", markup=False)
    run_server(engine, host, port, api_key=api_key, max_budget=max_budget, max_body_bytes=max_body_bytes,
               model_name=served_model_name, default_strategy=strategy, default_budget=budget)


def _check_port_free(host: str, port: int) -> None:
    """Bind before loading a model: a busy port is one clear line, not a traceback after the load."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise TTScaleError(f"cannot listen on {host}:{port} ({e.strerror})",
                               "pick another --port, or stop what is using it") from None


@app.command("strategies")
def list_strategies() -> None:
    """List the strategies you can pass to --strategy."""
    from ttscale.strategies import strategies

    from ttscale.strategies.options import ENGINE_OPTIONS, fields_of, options_class

    for name in strategies.names():
        cls = options_class(name)
        if cls is None:
            print(f"{name}  (options: any, unchecked)")
            continue
        defaults = cls()
        shown = [f"{k}={getattr(defaults, k)!r}" for k in fields_of(cls) if k not in ENGINE_OPTIONS]
        print(f"{name}  options: {', '.join(shown) or '(none)'}")


from ttscale.bench.commands import register as _register_bench  # noqa: E402

_register_bench(app)

from ttscale.allocate import register as _register_allocate  # noqa: E402

_register_allocate(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Ctrl-C exits 130: typer turns a KeyboardInterrupt inside a
    command into that return value, after the command printed what it kept (bench) or lost (solve)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except TTScaleError as e:
        err.print(f"error: {e}", markup=False)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except KeyboardInterrupt:  # outside a command's run (while parsing), where typer does not catch it
        return 130
    except Exception as e:  # click usage errors (bad flag, missing argument); typer bundles its own click
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            err.print(f"error: {e.format_message()}", markup=False)
            return 2
        raise
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
