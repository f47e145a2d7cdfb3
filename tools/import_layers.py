"""Measures the import structure of ``jaxcompress/`` between its top-level rooms.

A room is a direct child of the package: a subpackage (``nn``, ``train``) or a
top-level module (``cli``, ``errors``). The script parses every module's imports
(no code is run), reports the rooms' levels, the imports that run against the
declared layer order, and import cycles between files, and exits non-zero when
any import runs back up the order, so it can serve as a check.

Usage::

    python tools/import_layers.py            # summary and violations
    python tools/import_layers.py --json     # machine-readable figures
    python tools/import_layers.py --no-order # figures only, no declared order
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys
from collections import defaultdict

PACKAGE = "jaxcompress"

# Declared layer order, bottom first; a room may import rooms on its own line
# or below, never above. Rooms on one line must not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "__init__"),
    ("configlib", "ops"),
    ("nn",),
    ("speech",),
    ("phonology",),
    ("data",),
    ("compress", "ssl", "convert", "active"),
    ("train",),
    ("tasks", "model_info", "plots"),
    ("configs", "workflows"),
    ("runners",),
    ("demo",),
    ("cli",),
    ("__main__",),
)


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: pathlib.Path, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Absolute names of the ``jaxcompress`` modules a file imports (anywhere in it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            # ``from jaxcompress.x import y`` depends on submodule x.y where y is one, else on x.
            found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                         for a in node.names)
    return found


def build_graph(root: pathlib.Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = imported_modules(path, name, path.name == "__init__.py", set(files))
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph.items():
        rooms[room(src)]
        for dst in targets:
            if room(dst) != room(src) and room(src) != "__init__":
                rooms[room(src)].add(room(dst))
    return dict(rooms)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one node are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def levels(rooms: dict[str, set[str]]) -> dict[str, int]:
    """Longest import chain below each room (rooms in a cycle share a level)."""
    cycles = strongly_connected(rooms)
    rep = {r: r for r in rooms}
    for comp in cycles:
        for r in comp:
            rep[r] = comp[0]
    condensed: dict[str, set[str]] = defaultdict(set)
    for src, targets in rooms.items():
        condensed[rep[src]]
        condensed[rep[src]].update(rep[t] for t in targets if rep[t] != rep[src])
    memo: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((depth(t) for t in condensed[node]), default=0)
        return memo[node]

    return {r: depth(rep[r]) for r in rooms}


def back_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """File-level imports that run against :data:`LAYERS`."""
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = room(src), room(dst)
            if a == b or a == "__init__":
                continue
            if a not in rank or b not in rank:
                bad.append((src, dst))  # an undeclared room is itself a finding
            elif rank[b] > rank[a] or (rank[b] == rank[a]):
                bad.append((src, dst))
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1] / PACKAGE))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = pathlib.Path(args.root)
    graph = build_graph(root)
    rooms = room_graph(graph)
    room_levels = levels(rooms)
    file_cycles = strongly_connected(graph)
    bad = back_imports(graph)
    figures = {
        "rooms": len(rooms),
        "levels": max(room_levels.values(), default=0),
        "room_levels": dict(sorted(room_levels.items(), key=lambda kv: (kv[1], kv[0]))),
        "room_cycles": strongly_connected(rooms),
        "room_edges_in_cycles": sorted(f"{a} -> {b}" for comp in strongly_connected(rooms)
                                       for a in comp for b in rooms[a] if b in comp),
        "file_cycles": file_cycles,
        "back_imports": [f"{a} -> {b}" for a, b in bad],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"rooms {figures['rooms']}, levels {figures['levels']}, back imports {len(bad)}, "
              f"room edges in cycles {len(figures['room_edges_in_cycles'])}, "
              f"file cycles {len(file_cycles)} (largest {max(map(len, file_cycles), default=0)} files)")
        for comp in figures["room_cycles"]:
            print(f"  room cycle: {', '.join(comp)}")
        for lvl in sorted(set(room_levels.values())):
            print(f"  level {lvl}: {', '.join(r for r, v in room_levels.items() if v == lvl)}")
        for line in figures["back_imports"]:
            print(f"  back import: {line}")
        for comp in file_cycles:
            print(f"  cycle of {len(comp)}: {', '.join(comp)}")
    return 1 if bad or file_cycles else 0


if __name__ == "__main__":
    raise SystemExit(main())
