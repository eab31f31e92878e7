"""No import cycle among modules: ``python -m workshop.checks.cycles PACKAGE...`` (``make lint``).

import-linter's ``acyclic_siblings`` contract finds cycles between the children of a
package; a cycle between a package's ``__init__`` and one of its own modules escapes it.
This check works on the module graph itself (grimp: every import statement, also inside
functions and ``TYPE_CHECKING`` blocks), finds its strongly connected components (Tarjan)
and fails naming one cycle of each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence

Graph = Mapping[str, Iterable[str]]


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The components of more than one module, or of one that imports itself (Tarjan's
    algorithm, iterative so a deep graph cannot overflow the stack); sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop(0)
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def one_cycle(graph: Graph, component: Sequence[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path that ends where it
    starts (breadth-first inside the component)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def import_graph(packages: Sequence[str]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (grimp, without external packages)."""
    import grimp

    graph = grimp.build_graph(*packages, cache_dir=None)
    return {
        module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }


def check(graph: Graph) -> list[str]:
    """One line per cycle found, empty when there is none."""
    return [" -> ".join(one_cycle(graph, c)) for c in strongly_connected(graph)]


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 1 listing the cycles, 0 when there is none."""
    parser = argparse.ArgumentParser(prog="python -m workshop.checks.cycles", description=__doc__)
    parser.add_argument("packages", nargs="+", help="top-level packages to check")
    args = parser.parse_args(argv)
    graph = import_graph(args.packages)
    cycles = check(graph)
    for line in cycles:
        print(f"import cycle: {line}", file=sys.stderr)
    if cycles:
        return 1
    print(f"no import cycle among {len(graph)} modules of {', '.join(args.packages)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
