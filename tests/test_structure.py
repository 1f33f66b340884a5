"""The shape of the house (ARCHITECTURE.md): imports only go down, small modules, no global RNG in the server.

    app/ -> report/ -> viz/ -> alexnet/

Read with `ast`, so a lazy import inside a function counts as much as one at the top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ("alexnet", "viz", "report", "app")            # bottom to top
MAX_LINES = 450
NO_GLOBAL_RNG = ("alexnet", "viz", "app")               # report/ seeds only in its CLI main() as well


def modules(floor: str) -> list[Path]:
    return sorted((ROOT / floor).rglob("*.py")) if (ROOT / floor).is_dir() else []


def imported_floors(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(FLOORS)


@pytest.mark.parametrize("floor", FLOORS)
def test_imports_only_go_down(floor):
    above = set(FLOORS[FLOORS.index(floor) + 1:])
    wrong = {str(p.relative_to(ROOT)): sorted(imported_floors(p) & above) for p in modules(floor)}
    assert not {k: v for k, v in wrong.items() if v}, f"{floor}/ imports a floor above it"


def test_the_checker_sees_a_lazy_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from viz import plots\n    import app.ui as u\n")
    assert imported_floors(bad) == {"viz", "app"}


@pytest.mark.parametrize("floor", FLOORS)
def test_no_module_is_over_450_lines(floor):
    long = {str(p.relative_to(ROOT)): n for p in modules(floor) if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by idea: {long}"


def global_seeds(path: Path) -> list[int]:
    """Lines calling torch.manual_seed / torch.random.manual_seed / torch.cuda.manual_seed(_all),
    numpy's or random's global seed, outside a function named main and outside `if __name__ == "__main__"`.
    (`torch.Generator().manual_seed(s)` seeds a private generator and is what library code should do.)"""
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []

    def visit(node, allowed: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            allowed = True
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            allowed = True
        if isinstance(node, ast.Call) and not allowed:
            f = ast.unparse(node.func)
            if f in ("torch.manual_seed", "torch.random.manual_seed", "torch.cuda.manual_seed",
                     "torch.cuda.manual_seed_all", "np.random.seed", "numpy.random.seed", "random.seed"):
                bad.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, allowed)
    visit(tree, False)
    return bad


@pytest.mark.parametrize("floor", NO_GLOBAL_RNG)
def test_no_global_seeding_outside_cli_entry_points(floor):
    found = {str(p.relative_to(ROOT)): lines for p in modules(floor) if (lines := global_seeds(p))}
    assert not found, f"pass a torch.Generator (or a seed) instead of reseeding the global RNG: {found}"


def test_the_seed_checker_allows_generators_and_main_only(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\n"
                 "g = torch.Generator().manual_seed(0)\n"
                 "def main():\n    torch.manual_seed(1)\n"
                 "def serve():\n    torch.manual_seed(2)\n"
                 "if __name__ == '__main__':\n    torch.manual_seed(3)\n")
    assert global_seeds(f) == [6]


def sys_path_edits(path: Path) -> list[int]:
    """Lines that change sys.path: sys.path.insert/append/extend(...) or an assignment to sys.path[...]."""
    def is_sys_path(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
            and node.value.id == "sys"
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value) \
                and node.func.attr in ("insert", "append", "extend"):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets):
                lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("folder", FLOORS + ("tests", "benchmarks"))
def test_nothing_edits_sys_path(folder):
    """The packages are found because the project is installed (pyproject.toml), not by patching sys.path."""
    found = {str(p.relative_to(ROOT)): sys_path_edits(p) for p in modules(folder)}
    assert not {k: v for k, v in found.items() if v}


def test_the_sys_path_checker_sees_each_kind_of_edit(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import sys\nsys.path.insert(0, 'x')\nsys.path[:0] = ['y']\nsys.path += ['z']\nprint(sys.path)\n")
    assert sys_path_edits(f) == [2, 3, 4]


# ---------------------------------------------------------------- no import circle inside a floor

def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _script_block(node) -> bool:
    """`if __name__ == "__main__":`: run only as a script, when the module is __main__ and not itself."""
    t = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__")


def module_imports(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The modules of `known` that `path` imports anywhere (top, inside functions), `from pkg import mod` and
    relative imports resolved; its `if __name__ == "__main__"` block is left out."""
    me = _module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out, todo = set(), [ast.parse(path.read_text(), filename=str(path))]
    while todo:
        node = todo.pop()
        if _script_block(node):
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    # a module's own packages are not edges: Python runs a package's __init__ before any of its modules
    return {m for m in out if m in known and m != me and not me.startswith(m + ".")}


def import_graph(floor: str, root: Path = ROOT) -> dict[str, set[str]]:
    paths = sorted((root / floor).rglob("*.py"))
    known = {_module_name(p, root) for p in paths}
    return {_module_name(p, root): module_imports(p, known, root) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None when the graph is a DAG (depth-first, three colours)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


@pytest.mark.parametrize("floor", FLOORS)
def test_the_imports_inside_each_floor_form_a_dag(floor):
    graph = import_graph(floor)
    assert graph, f"no modules found under {floor}/"
    cycle = find_cycle(graph)
    assert cycle is None, f"import circle in {floor}/: {' -> '.join(cycle)}"


def test_the_cycle_checker_sees_a_lazy_circle_and_skips_script_blocks(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "c.py").write_text("import pkg.b\nif __name__ == '__main__':\n    from pkg.d import main\n")
    (pkg / "d.py").write_text("from pkg import c\n")
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}      # `from .a import x` inside a function
    assert graph["pkg.c"] == {"pkg.b"} and graph["pkg.d"] == {"pkg.c"}      # c's script block is not an import of c
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    del graph["pkg.a"]
    assert find_cycle(graph) is None


# ---------------------------------------------------------------- one owner of model work (app.compute)

TOUCHES = ("model", "lock", "replica", "_replica", "lanes")   # a Loaded's network, its lock, the lanes under compute


def model_touches(path: Path) -> list[str]:
    """Where a module reaches a model itself instead of through app.compute: it reads `.model`, `.lock`,
    `.replica` or `.lanes`, or calls `registry.forward` (compute.forward batches and caches that pass)."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in TOUCHES:
            bad.append(f"line {node.lineno}: .{node.attr}")
        if (isinstance(node, ast.Attribute) and node.attr == "forward" and isinstance(node.value, ast.Attribute)
                and node.value.attr == "registry"):
            bad.append(f"line {node.lineno}: registry.forward")
    return bad


def test_no_tab_runs_a_model_itself():
    tabs = sorted((ROOT / "app").glob("tab_*.py"))
    assert len(tabs) >= 6
    found = {p.name: model_touches(p) for p in tabs}
    assert not {k: v for k, v in found.items() if v}, f"run the network through page.compute: {found}"


def test_the_model_call_checker_sees_each_kind(tmp_path):
    bad = tmp_path / "tab_bad.py"
    bad.write_text("def f(page, loaded, x):\n    y = loaded.model(x)\n    with loaded.lock:\n        pass\n"
                   "    page.registry.forward(loaded, x)\n    page.lanes.run_slow(loaded, f)\n")
    assert sorted(t.split(": ")[1] for t in model_touches(bad)) == [".lanes", ".lock", ".model", "registry.forward"]
    good = tmp_path / "tab_good.py"
    good.write_text("def f(page, loaded, x):\n    return page.compute.cheap(loaded, explain, x, meta=loaded.meta)\n")
    assert model_touches(good) == []
