"""The package layout holds: import-linter's contracts (setup.cfg), no import cycle between pinrec's
modules (imports inside functions included), DAGs that import only orchestration entry points, no
bare ``jobs``/``models``/``export``/``schemas`` imports, and setup.cfg listing every package."""
from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repo import REPO

PACKAGES = ("schemas", "models", "export", "jobs")
BARE = {"jobs", "models", "export", "schemas"}


def pinrec_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed pinrec packages: name -> (file, is a package)."""
    out = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(f"pinrec.{package}")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            name = ".".join(["pinrec", package, *(parts[:-1] if is_pkg else parts)])
            out[name] = (path, is_pkg)
    return out


def runtime_imports(tree: ast.AST):
    """Import nodes anywhere (functions included) except under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for st in node.orelse for n in [st, *runtime_imports(st)] if isinstance(n, (ast.Import, ast.ImportFrom)))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def import_graph(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, (path, is_pkg) in modules.items():
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                prefix = base[:len(base) - node.level + 1] if node.level else []
                mod = ".".join(prefix + ([node.module] if node.module else []))
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root, edges in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(edges)))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_function_level_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("import x\nif TYPE_CHECKING:\n    import y\ndef f():\n    from . import z\n")
    assert [ast.unparse(n) for n in runtime_imports(tree)] == ["import x", "from . import z"]


def test_no_import_cycles_between_pinrec_modules():
    found = cycles(import_graph(pinrec_modules()))
    assert found == [], f"import cycles (imports inside functions count): {found}"


def test_import_linter_contracts():
    pytest.importorskip("importlinter")
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache", "setup.cfg"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_dags_import_only_orchestration_entry_points():
    for path in sorted((REPO / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.split(".")[0] in BARE | {"pinrec"}:
                    assert name.startswith("pinrec.jobs.orchestration."), f"{path.name}: imports {name}"


def tracked_sources() -> list[tuple[str, str]]:
    files = subprocess.run(["git", "ls-files", "*.py", "*.ipynb"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    out = []
    for rel in files:
        text = (REPO / rel).read_text()
        if rel.endswith(".ipynb"):
            for i, cell in enumerate(json.loads(text)["cells"]):
                if cell["cell_type"] == "code":
                    src = "".join(cell["source"])
                    out.append((f"{rel}[{i}]", "\n".join(ln for ln in src.splitlines() if not ln.startswith(("%", "!")))))
        else:
            out.append((rel, text))
    return out


def test_nothing_imports_bare_packages():
    bad = []
    for where, text in tracked_sources():
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else []
            bad += [f"{where}: {n}" for n in names if n.split(".")[0] in BARE]
    assert bad == []


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    mapped = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    assert mapped == {f"pinrec.{p}": p for p in PACKAGES}
    folders = {"pinrec." + ".".join(init.parent.relative_to(REPO).parts)
               for p in PACKAGES for init in (REPO / p).rglob("__init__.py")}
    assert listed == folders
