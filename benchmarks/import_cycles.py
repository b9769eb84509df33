"""Import cycles among the project's modules, counting imports inside functions too (a deferred import
hides a cycle from Python, not from a reader).

    python benchmarks/import_cycles.py            # prints each cycle (strongly connected group) and a count
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `verifiers` may import from ttscale: the message types and the error type, leaf modules that
# import nothing of ttscale's (so verifiers never pulls in the engine, backends, strategies or lab).
BOUNDARY = {"ttscale.errors", "ttscale.requests"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules that `path` imports at run time (the longest known prefix of each imported name)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` depends on the submodule; `from pkg import name` on the package
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != me:
                out.add(name)
    return out


def runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (type hints only, never imported at run time)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def graph(packages: list[str]) -> dict[str, set[str]]:
    files = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imports(p, known) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), and modules that import a package
    whose __init__ imports them back count too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", nargs="+", default=["ttscale", "verifiers", "eval_sets"])
    args = parser.parse_args()
    g = graph(args.packages)
    found = cycles(g)
    for group in found:
        print(f"cycle of {len(group)}: {', '.join(group)}")
    crossing = sorted({(a, b) for a, deps in g.items() for b in deps
                       if a.split(".")[0] == "verifiers" and b.split(".")[0] == "ttscale"})
    beyond = sorted({b for _, b in crossing} - BOUNDARY)
    print(f"import cycles: {len(found)}")
    print(f"verifiers -> ttscale imports: {len(crossing)}, of modules beyond the boundary "
          f"({', '.join(sorted(BOUNDARY))}): {len(beyond)}")
    for a, b in crossing:
        print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
