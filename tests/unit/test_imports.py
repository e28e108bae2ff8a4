"""No import circle in lhp_core: the module graph is acyclic, counting imports at any depth and the
modules named by string (registry providers, ``cli.COMMANDS``, ``importlib.import_module``); in-function
imports are few and each says why; every module imports on its own in a fresh interpreter, in any order."""
from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "lhp_core"
#: In-function imports allowed in the whole package (each with a comment giving its reason).
MAX_LOCAL_IMPORTS = 15


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":  # a script: importing it runs the command line
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """lhp_core modules ``name`` imports at any depth of its code (function bodies included), or names
    in a string constant (``"lhp_core.metrics.loss"``, ``"lhp_core.metrics.loss:loss_over_steps"``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(name.split(".")[:-node.level] + [node.module])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value.split(":")[0])
    return {m for m in found if m in known and m != name and m != "lhp_core"}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, m, set(mods)) for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first walk (empty when the graph is acyclic)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_cycle_finder_follows_string_imports(tmp_path: Path) -> None:
    # the shape of a registry whose provider registers back into it, and of a CLI whose command imports it
    registry = {"reg": {"prov"}, "prov": {"reg"}, "cli": {"cmd"}, "cmd": {"opts"}, "opts": set()}
    assert _cycles(registry) == [["prov", "reg", "prov"]]
    code = 'R = Registry("x", providers=["lhp_core.b"])\nC = {"b": ("lhp_core.b:main", "help")}\n'
    path = tmp_path / "a.py"
    path.write_text(code)
    assert _imports(path, "lhp_core.a", {"lhp_core.a", "lhp_core.b"}) == {"lhp_core.b"}


def test_import_graph_has_no_cycle() -> None:
    graph = _graph()
    # the string imports this test exists for are seen
    assert "lhp_core.cli.train" in graph["lhp_core.cli"]
    cycles = _cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _local_imports() -> list[tuple[str, int, str]]:
    """``(path, line, source line)`` of every import statement inside a function body."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        lines = path.read_text().splitlines()
        seen = set()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in seen:
                    seen.add(node.lineno)
                    out.append((str(path.relative_to(ROOT)), node.lineno, lines[node.lineno - 1]))
    return out


def _has_reason(path: str, line: int, text: str) -> bool:
    """A comment on the import's line, or on the line just above it."""
    above = (ROOT / path).read_text().splitlines()[line - 2].strip()
    return ("#" in text and text.split("#", 1)[1].strip() != "") or (above.startswith("#") and len(above) > 2)


def test_few_in_function_imports_each_with_its_reason() -> None:
    found = _local_imports()
    listing = "\n".join(f"{p}:{n}: {t.strip()}" for p, n, t in found)
    assert len(found) <= MAX_LOCAL_IMPORTS, (
        f"{len(found)} imports inside functions (at most {MAX_LOCAL_IMPORTS}); move one to the top of its "
        f"module:\n{listing}")
    bare = [f"{p}:{n}: {t.strip()}" for p, n, t in found if not _has_reason(p, n, t)]
    assert not bare, "in-function imports without a comment giving the reason:\n" + "\n".join(bare)


def test_every_module_imports_alone_in_any_order() -> None:
    names = sorted(_modules())
    random.Random(0).shuffle(names)
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    for order in (names, list(reversed(names))):
        proc = subprocess.run([sys.executable, "-c", script, *order], capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
