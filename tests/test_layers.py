"""The layers contract of ``docs/design.md``: folders in data-flow order, imports only downward, no cycles.

Every ``import`` statement is read from the source (module level *and* inside functions), so a cycle or an
upward import cannot hide in a function body. The contract itself is the table in ``docs/design.md``
(section "Folders and what they may import"); this test parses it, so the document and the check agree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "eegvision"
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 700


def layers_from_design() -> list[str]:
    """Folder names of the design document's table, bottom layer first (``base`` = top-level modules)."""
    text = DESIGN.read_text()
    section = text.split("## Folders and what they may import", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("|") and not set(r) <= set("|- ")]
    names = [r.split("|")[2].strip().strip("`").rstrip("/") for r in rows[1:]]  # column 2: folder
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """eegvision modules that ``path`` imports anywhere (``from a import b`` counts ``a.b`` when b is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "eegvision"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            if base.split(".")[0] != "eegvision":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    found.discard(name)
    return found


def layer_of(module: str, layers: list[str]) -> int:
    parts = module.split(".")
    folder = parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "base"
    assert folder in layers, f"{module} lies in folder {folder!r}, which docs/design.md's layer table does not list"
    return layers.index(folder)


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports_of(p, m, known) if i in known or i == "eegvision"} for m, p in mods.items()}


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_design_table_lists_every_folder():
    layers = layers_from_design()
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert layers[0] == "base"
    assert folders - {"resources"} == set(layers[1:]), "docs/design.md's table and the package's folders differ"


def test_no_import_cycles():
    assert find_cycles(graph()) == []


def test_imports_go_only_downward():
    layers = layers_from_design()
    upward = []
    for mod, targets in graph().items():
        if mod == "eegvision":
            continue
        for t in targets:
            if t != "eegvision" and layer_of(t, layers) > layer_of(mod, layers):
                upward.append(f"{mod} -> {t}")
    assert upward == []


def test_library_never_imports_cli():
    assert [m for m, ts in graph().items() if not m.startswith("eegvision.cli")
            and any(t.startswith("eegvision.cli") for t in ts)] == []


def test_no_package_attribute_hides_a_module():
    """``from eegvision.x import y`` must mean one thing: no package exports a name equal to one of its modules."""
    hidden = []
    for init in PACKAGE.rglob("__init__.py"):
        pkg = init.parent
        submodules = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"} | \
                     {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
        tree = ast.parse(init.read_text())
        exported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                exported |= {a.asname or a.name for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                exported.add(node.name)
        exported |= set(re.findall(r'^\s+"(\w+)": "\w+",$', init.read_text(), flags=re.M))  # lazy_exports tables
        for name in sorted(exported & submodules):
            hidden.append(f"{module_name(init)}.{name}")
    assert hidden == []


def test_no_source_file_over_max_lines():
    long = {str(p.relative_to(SRC)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_contract_check_sees_function_local_imports(tmp_path):
    """The checker itself: an import inside a function body is an edge of the graph."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from eegvision.cli import main\n    import eegvision.demo.run\n")
    known = {"eegvision.cli", "eegvision.cli.main", "eegvision.demo.run"}
    assert imports_of(f, "eegvision.x.m", known) == {"eegvision.cli.main", "eegvision.demo.run"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_run_folder_file_names_have_one_owner():
    """Run-folder file names are spelled in one module (the grep itself is tests/test_rundir.py)."""
    from test_rundir import test_run_file_names_are_spelled_only_in_rundir

    test_run_file_names_are_spelled_only_in_rundir()
