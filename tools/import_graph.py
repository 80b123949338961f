"""Draw the import graph of ``aiinvariants`` and measure its public surface.

Usage::

    python tools/import_graph.py [--src DIR] [--modules] [--dot]

Reads the sources (it imports nothing), so it runs on any checkout, before or
after a refactoring, with only the standard library. It prints:

- the surface: modules, public modules (no ``_private`` part in their
  dotted name), the names public modules export (``__all__``), and the
  names of the top level;
- the graph between units (``guard``, ``filters``, ``integrations``…: the
  first part under ``aiinvariants``), each edge with how many imports make
  it: eager (module level), lazy (inside a function) and typing (under
  ``if TYPE_CHECKING:``, which never runs);
- the cycles: units that import each other, directly or through others
  (strongly connected components), which is control going back and forth
  between layers.

``--modules`` draws the graph between modules instead of units; ``--dot``
prints Graphviz DOT (``dot -Tsvg``) instead of text. ``--check`` checks the
layers of docs/architecture.md instead: every module belongs to a layer, and
an import that runs never goes to a higher layer, except the few lazy ones
listed in ``UPWARD`` with their reason; it exits 1 naming each offence.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "aiinvariants"

#: The layers, lowest first: a module belongs to the layer of its longest
#: listed prefix. docs/architecture.md describes them.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "aiinvariants._errors",
            "aiinvariants._internal",
            "aiinvariants._principal",
            "aiinvariants._classification",
            "aiinvariants.policy",
        ),
    ),
    (
        "decisions",
        (
            "aiinvariants._scopes",
            "aiinvariants._usecases",
            "aiinvariants._options",
            "aiinvariants._tools",
            "aiinvariants._retrieval",
            "aiinvariants.tools",
            "aiinvariants.taint",
            "aiinvariants.resources",
            "aiinvariants.retrieval",
            "aiinvariants.audit",
            "aiinvariants.auth",
            "aiinvariants.filters",
            "aiinvariants.llm",
        ),
    ),
    ("guard", ("aiinvariants._guard", "aiinvariants.integrations._dispatch")),
    ("integrations", ("aiinvariants.integrations",)),
    (
        "entry points",
        (
            "aiinvariants",
            "aiinvariants.__main__",
            "aiinvariants._cli",
            "aiinvariants._demo",
            "aiinvariants._report",
            "aiinvariants._export",
            "aiinvariants._verify",
            "aiinvariants.testing",
        ),
    ),
)

#: The imports allowed to go up a layer, each lazy (inside a function), with
#: why. Anything else that goes up is a layering error.
UPWARD: dict[tuple[str, str], str] = {
    ("aiinvariants._scopes", "aiinvariants._guard"): (
        "@enforce_user_scope finds the installed guard at call time"
    ),
    ("aiinvariants._usecases", "aiinvariants._guard"): (
        "@use_case finds the installed guard at call time"
    ),
    ("aiinvariants._tools.registration", "aiinvariants._guard"): (
        "guarded_tool finds the installed guard at call time"
    ),
    ("aiinvariants._retrieval", "aiinvariants.integrations._dispatch"): (
        "secure_retriever() is a thin entry into the dispatch table"
    ),
    ("aiinvariants.llm._guarded", "aiinvariants.integrations._dispatch"): (
        "guard_llm() is a thin entry into the dispatch table"
    ),
}


@dataclass
class Module:
    name: str
    path: Path
    exports: list[str] | None
    imports: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def public(self) -> bool:
        return not any(part.startswith("_") for part in self.name.split("."))


def module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        named = any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)
        if named and isinstance(value, (ast.List, ast.Tuple)):
            return [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
    return None


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    keep = len(base) - node.level + (1 if is_package else 0)
    prefix = base[:keep]
    return ".".join(prefix + ([node.module] if node.module else []))


def inside(tree: ast.Module, kinds: tuple[type[ast.AST], ...]) -> set[int]:
    return {
        id(inner)
        for outer in ast.walk(tree)
        if isinstance(outer, kinds) and _is_block(outer)
        for inner in ast.walk(outer)
    }


def _is_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return True
    test = node.test
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
    return name == "TYPE_CHECKING"


def imported(module: Module, tree: ast.Module, known: set[str]) -> None:
    is_package = module.path.name == "__init__.py"
    typing_nodes = inside(tree, (ast.If,))
    lazy_nodes = inside(tree, (ast.FunctionDef, ast.AsyncFunctionDef))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module.name, is_package, node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append(full if full in known else base)
        kind = "typing" if id(node) in typing_nodes else "eager"
        kind = "lazy" if id(node) in lazy_nodes else kind
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != module.name:
                module.imports[(target, kind)] += 1


def load(src: Path) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    trees: dict[str, ast.Module] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        name = module_name(src, path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules[name] = Module(name, path, read_all(tree))
        trees[name] = tree
    known = set(modules)
    for name, module in modules.items():
        imported(module, trees[name], known)
    return modules


def layer_of(name: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # The package itself stands for its __init__ only.
            nested = prefix != PACKAGE and name.startswith(prefix + ".")
            within = name == prefix or nested
            if within and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def check_layers(modules: dict[str, Module]) -> list[str]:
    """Every offence against the layers, one line each (none: an empty list)."""
    problems = [
        f"{name}: in no layer (add its prefix to LAYERS in tools/import_graph.py)"
        for name in sorted(modules)
        if layer_of(name) is None
    ]
    edges = graph(modules, True)
    for (a, b, kind), _ in sorted(edges.items()):
        low, high = layer_of(a), layer_of(b)
        if kind == "typing" or low is None or high is None or high <= low:
            continue
        if (a, b) in UPWARD and kind == "lazy":
            continue
        problems.append(
            f"{a} ({LAYERS[low][0]}) imports {b} ({LAYERS[high][0]}), a higher "
            f"layer ({kind}): move the code down, or pass what it needs in"
        )
    used = running(edges)
    problems += [
        f"UPWARD lists {a} -> {b}, which no longer imports it: remove the entry"
        for a, b in sorted(UPWARD)
        if (a, b) not in used
    ]
    return problems


def unit(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def graph(modules: dict[str, Module], by_module: bool) -> Counter[tuple[str, str, str]]:
    edges: Counter[tuple[str, str, str]] = Counter()
    for module in modules.values():
        for (target, kind), count in module.imports.items():
            a, b = (
                (module.name, target)
                if by_module
                else (unit(module.name), unit(target))
            )
            if a != b and b != PACKAGE:
                edges[(a, b, kind)] += count
    return edges


def cycles(edges: Counter[tuple[str, str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan).

    Imports made only for type checking do not run, so they make no cycle.
    """
    succ: dict[str, set[str]] = {}
    for a, b, kind in edges:
        succ.setdefault(a, set())
        succ.setdefault(b, set())
        if kind != "typing":
            succ[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(succ[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(1000, 4 * len(succ)))
    for node in sorted(succ):
        if node not in index:
            visit(node)
    return sorted(found)


def surface(modules: dict[str, Module]) -> list[str]:
    public = [m for m in modules.values() if m.public]
    names = sum(len(m.exports or ()) for m in public)
    top = modules[PACKAGE].exports or []
    lines = [
        f"modules: {len(modules)}",
        f"public modules: {len(public)}",
        f"names exported by public modules: {names}",
        f"top-level names: {len(top)}",
    ]
    missing = sorted(m.name for m in public if m.exports is None)
    if missing:
        lines.append("public modules without __all__: " + ", ".join(missing))
    return lines


def text(edges: Counter[tuple[str, str, str]]) -> list[str]:
    lines = []
    pairs = running(edges)
    for a, b in sorted({(a, b) for a, b, _ in edges}):
        kinds = ", ".join(
            f"{edges[(a, b, kind)]} {kind}"
            for kind in ("eager", "lazy", "typing")
            if edges[(a, b, kind)]
        )
        back = " (both ways)" if (a, b) in pairs and (b, a) in pairs else ""
        lines.append(f"  {a} -> {b}: {kinds}{back}")
    return lines


def running(edges: Counter[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """The pairs joined by an import that runs (not only for type checking)."""
    return {(a, b) for a, b, kind in edges if kind != "typing"}


def dot(edges: Counter[tuple[str, str, str]]) -> list[str]:
    lines = ["digraph aiinvariants {", "  rankdir=LR;"]
    for a, b in sorted({(a, b) for a, b, _ in edges}):
        style = "" if edges[(a, b, "eager")] else " [style=dashed]"
        lines.append(f'  "{a}" -> "{b}"{style};')
    lines.append("}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--src", type=Path, default=Path(__file__).parent.parent / "src"
    )
    parser.add_argument("--modules", action="store_true", help="graph between modules")
    parser.add_argument("--dot", action="store_true", help="print Graphviz DOT")
    parser.add_argument("--check", action="store_true", help="check the layers")
    args = parser.parse_args(argv)
    if not (args.src / PACKAGE / "__init__.py").is_file():
        parser.error(
            f"--src {args.src}: no {PACKAGE}/__init__.py there; pass the src directory"
        )
    modules = load(args.src)
    if args.check:
        problems = check_layers(modules)
        print("\n".join(problems) or f"layers hold: {len(modules)} modules")
        return 1 if problems else 0
    edges = graph(modules, args.modules)
    if args.dot:
        print("\n".join(dot(edges)))
        return 0
    loops = cycles(edges)
    both = running(edges)
    mutual = sum(1 for a, b in both if (b, a) in both) // 2
    report = [
        *surface(modules),
        f"edges that run: {len(both)} ({mutual} pairs both ways)",
        f"cycles: {len(loops)}",
        *(f"  cycle: {' <-> '.join(loop)}" for loop in loops),
        "graph:",
        *text(edges),
    ]
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
