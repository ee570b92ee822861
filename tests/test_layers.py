"""The package reads as layers: no import circle between its modules, and no import running
back up a declared layer order (issue 30 §2).

The imports of every module of ``fer_edge/`` are read with ``ast`` (no module is imported), the
ones inside functions too: a lazy import is still an arrow between two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the light layers, lowest first: a module may import modules of its own layer and of the
#: layers before it, never of one after it. A module belongs to the layer of its longest
#: matching prefix; a module named ``cli`` belongs to the ``cli`` layer wherever it is.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("fer_edge.errors", "fer_edge.io", "fer_edge.quiet", "fer_edge.spec",
              "fer_edge.preprocess", "fer_edge.config", "fer_edge.options", "fer_edge.gate",
              "fer_edge.metrics",
              "fer_edge.data")),
    ("detect", ("fer_edge.detect",)),
    ("runtime", ("fer_edge.runtime",)),
    ("evaluate", ("fer_edge.evaluate", "fer_edge.evaluate_people", "fer_edge.evaluate_config")),
    ("personal", ("fer_edge.personal",)),
    ("api", ("fer_edge",)),  # the package root: fer_edge.load()
    ("demo", ("fer_edge.demo",)),
    ("serve", ("fer_edge.serve",)),
    ("bench", ("fer_edge.bench",)),
    ("cli", ("fer_edge.cli", "fer_edge.__main__", "fer_edge.evaluate_cli")),
]
#: the heavy stages (TensorFlow), beside the light stack: each may import these layers (and
#: only the ``cli`` layer may import them)
HEAVY: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "train": (("fer_edge.train",), {"core", "detect", "runtime", "evaluate", "train"}),
    "convert": (("fer_edge.convert",), {"core", "detect", "runtime", "evaluate", "train",
                                        "convert"}),
}
#: arrows known to run the wrong way, each with the work that removes it; the test fails when
#: one no longer exists, so the entry is deleted with the arrow
KNOWN: dict[tuple[str, str], str] = {
}


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of a package (``__init__`` names the
    package itself)."""
    base = package_dir.parent
    out = {}
    for p in sorted(package_dir.rglob("*.py")):
        parts = list(p.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in (``a.b.C`` -> ``a.b`` when that is a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _from_targets(node: ast.ImportFrom, module: str, is_pkg: bool,
                  modules: dict[str, Path]) -> set[str]:
    """The modules one ``from X import a, b`` statement imports."""
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        pkg = module.split(".") if is_pkg else module.split(".")[:-1]
        base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
    out = set()
    for alias in node.names:
        full = f"{base}.{alias.name}"
        if full in modules:  # a submodule
            out.add(full)
        elif alias.name == "__version__" and "." not in base:
            # the root's version string: the root runs on every import of the package anyway,
            # and taking a constant from it is no arrow to what its load() imports
            continue
        else:
            out.add(_owner(base, modules))
    return out


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its code)."""
    modules = module_files(package_dir)
    top = package_dir.name
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {_owner(a.name, modules) for a in node.names
                            if a.name.split(".")[0] == top}
            elif isinstance(node, ast.ImportFrom):
                if node.level or (node.module or "").split(".")[0] == top:
                    targets |= _from_targets(node, module, path.name == "__init__.py",
                                             modules)
        graph[module] = {t for t in targets if t and t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: every strongly connected set of two or more modules (Tarjan),
    each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_of(module: str) -> str | None:
    """The layer a module of ``fer_edge`` belongs to, or None when none is declared."""
    if module.rpartition(".")[2] == "cli":
        return "cli"
    best, size = None, -1
    rules = [(n, p) for n, p in LAYERS] + [(n, p) for n, (p, _) in HEAVY.items()]
    for name, prefixes in rules:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > size:
                best, size = name, len(p)
    return best


def may_import(importer: str, imported: str) -> bool:
    """Whether a module of layer ``importer`` may import one of layer ``imported``."""
    if importer == "cli":
        return True
    if importer in HEAVY:
        return imported in HEAVY[importer][1]
    if imported in HEAVY:
        return False
    order = [n for n, _ in LAYERS]
    return order.index(imported) <= order.index(importer)


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str, str, str]]:
    """(importer, its layer, imported, its layer) for every arrow the layers forbid."""
    out = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            la, lb = layer_of(a), layer_of(b)
            if not may_import(la, lb):
                out.append((a, la, b, lb))
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT / "fer_edge")


def test_the_package_has_no_import_circle(graph):
    assert find_cycles(graph) == []


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) is None] == []


def test_no_import_runs_back_up_the_layers(graph):
    bad = [v for v in upward_imports(graph) if (v[0], v[2]) not in KNOWN]
    assert bad == [], "\n".join(f"{a} ({la}) imports {b} ({lb})" for a, la, b, lb in bad)


def test_known_exceptions_still_exist(graph):
    """An arrow removed must leave :data:`KNOWN` too (so the list never hides a new one)."""
    gone = [k for k in KNOWN if k[1] not in graph.get(k[0], set())]
    assert gone == [], f"remove from KNOWN in tests/test_layers.py: {gone}"


def test_detect_imports_no_stage_above_it(graph):
    above = ("fer_edge.demo", "fer_edge.serve", "fer_edge.personal", "fer_edge.train",
             "fer_edge.runtime")
    assert [(a, b) for a, bs in graph.items() if a.startswith("fer_edge.detect")
            for b in bs if b.startswith(above)] == []


# --- the checks can fail: a tiny fake graph and a fake package ------------------------------

def test_find_cycles_flags_an_injected_circle():
    g = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set(), "p.d": {"p.a"}}
    assert find_cycles(g) == []
    g["p.c"] = {"p.a"}  # injected: a -> b -> c -> a
    assert find_cycles(g) == [["p.a", "p.b", "p.c"]]


def test_upward_imports_flags_a_low_layer_importing_a_high_one():
    ok = {"fer_edge.demo.loop": {"fer_edge.detect.finder", "fer_edge.runtime"},
          "fer_edge.detect.finder": {"fer_edge.spec"}}
    assert upward_imports(ok) == []
    bad = dict(ok, **{"fer_edge.detect.geometry": {"fer_edge.demo.tracking"},
                      "fer_edge.runtime.base": {"fer_edge.train.fit"}})
    assert [(a, b) for a, _, b, _ in upward_imports(bad)] == [
        ("fer_edge.detect.geometry", "fer_edge.demo.tracking"),
        ("fer_edge.runtime.base", "fer_edge.train.fit")]


def test_import_graph_reads_lazy_relative_and_from_imports(tmp_path):
    pkg = tmp_path / "fer_edge"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from fer_edge.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import x\n")
    (pkg / "c.py").write_text("import fer_edge.a\nfrom fer_edge import __version__\n")
    g = import_graph(pkg)
    assert g["fer_edge.a"] == {"fer_edge.sub.b"}
    assert g["fer_edge.sub.b"] == {"fer_edge.c"}
    assert g["fer_edge.c"] == {"fer_edge.a"}
    assert find_cycles(g) == [["fer_edge.a", "fer_edge.c", "fer_edge.sub.b"]]
