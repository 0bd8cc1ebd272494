"""Map colouring of territories: neighbouring territories never share a colour.

One colour per RM from a short palette repeats on a county with 68 RMs, so two
neighbours may look like one territory. Colouring the graph of territories
(two territories are neighbours when a cell of one shares an edge with a cell
of the other) needs only a handful of colours for a map, whatever the number
of RMs, and tells neighbours apart.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import networkx as nx

STRATEGY = "DSATUR"  # networkx name of saturation_largest_first: few colours on planar maps


def territory_pairs(owners: Mapping[Hashable, Hashable | None],
                    cell_pairs: Iterable[tuple[Hashable, Hashable]]) -> set[tuple[Hashable, Hashable]]:
    """Pairs of territories (owner codes, sorted) that share at least one pair of adjacent cells.

    Parameters
    ----------
    owners : mapping
        Cell id to owner (None or missing: the cell belongs to no territory).
    cell_pairs : iterable of (cell id, cell id)
        Adjacent cells (a shared edge).

    Examples
    --------
    >>> sorted(territory_pairs({"a": "R1", "b": "R2", "c": "R2", "d": None}, [("a", "b"), ("b", "c"), ("c", "d")]))
    [('R1', 'R2')]
    """
    out = set()
    for x, y in cell_pairs:
        ox, oy = owners.get(x), owners.get(y)
        if ox is None or oy is None or ox == oy:
            continue
        out.add((ox, oy) if str(ox) <= str(oy) else (oy, ox))
    return out


def colour_territories(owners: Mapping[Hashable, Hashable | None],
                       cell_pairs: Iterable[tuple[Hashable, Hashable]]) -> dict[Hashable, int]:
    """A colour index (0, 1, 2, ...) per territory such that neighbouring territories differ.

    Greedy colouring (networkx, DSATUR) of the territory graph built by
    :func:`territory_pairs`; deterministic for the same input. Every owner in
    ``owners`` gets a colour, also one with no neighbour (0).

    Examples
    --------
    >>> owners = {"a": "R1", "b": "R2", "c": "R3", "d": "R1"}
    >>> colour_territories(owners, [("a", "b"), ("b", "c"), ("c", "d")])
    {'R1': 0, 'R2': 1, 'R3': 2}
    """
    graph = nx.Graph()
    graph.add_nodes_from(sorted({o for o in owners.values() if o is not None}, key=str))
    graph.add_edges_from(sorted(territory_pairs(owners, cell_pairs), key=lambda p: (str(p[0]), str(p[1]))))
    colours = nx.greedy_color(graph, strategy=STRATEGY) if graph.number_of_nodes() else {}
    return {node: int(colours[node]) for node in graph.nodes}
