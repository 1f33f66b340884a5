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
