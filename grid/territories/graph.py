"""Cell adjacency for territory planning: shared edges, islands and contiguity checks.

A territory is contiguous when its cells form one connected piece of the cell
graph. Two cells are adjacent when they share an edge, not just a corner.

Islands rule
------------
Village grids (multi-part cells, enclaves, a county whose parts do not touch)
and H3 grids clipped to a county can leave the cell graph in several
components. Each component is then joined to its nearest other component by
one *virtual edge* between the two closest cell centroids (Borůvka's minimum
spanning forest over components), until the graph is connected. A territory
that crosses a virtual edge is counted as contiguous in the augmented graph;
the virtual edges are returned so that reports and maps can show them.
"""

from __future__ import annotations

from collections import deque

import geopandas as gpd
import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from grid.projection import to_metric


def _metric_geoms(cells: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
    """Geometries in metres (projected data is used as is)."""
    gs = cells.geometry if isinstance(cells, gpd.GeoDataFrame) else cells
    if gs.crs is not None and gs.crs.is_geographic:
        gs = to_metric(gs)
    return np.asarray(gs.values, dtype=object)


def _segment_pairs(geoms: np.ndarray, tolerance_m: float, min_shared_m: float) -> np.ndarray:
    """Pairs of polygons with identical boundary segments once snapped to ``tolerance_m``."""
    rings = shapely.get_rings(geoms, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings[0], return_index=True)
    owner = rings[1][ring_of]
    snapped = np.round(coords / tolerance_m).astype(np.int64)
    same_ring = ring_of[1:] == ring_of[:-1]
    a, b = snapped[:-1][same_ring], snapped[1:][same_ring]
    poly = owner[:-1][same_ring]
    length = np.hypot(*(coords[1:][same_ring] - coords[:-1][same_ring]).T)
    # Direction-free key of each segment.
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    key = np.column_stack([lo, hi])
    order = np.lexsort(key.T[::-1])
    key, poly, length = key[order], poly[order], length[order]
    dup = np.flatnonzero((key[1:] == key[:-1]).all(axis=1) & (poly[1:] != poly[:-1]))
    if len(dup) == 0:
        return np.empty((0, 2), dtype=np.int64)
    i, j = poly[dup], poly[dup + 1]
    pairs = np.column_stack([np.minimum(i, j), np.maximum(i, j)])
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    shared = np.bincount(inv.ravel(), weights=length[dup], minlength=len(uniq))
    return uniq[shared > min_shared_m]


def shared_edge_pairs(
    geoms: np.ndarray, *, tolerance_m: float = 0.01, min_shared_m: float = 1.0
) -> np.ndarray:
    """Index pairs ``(i, j)``, ``i < j``, of metric polygons sharing an edge.

    Fast path: boundary segments that coincide after snapping vertices to
    ``tolerance_m`` (neighbouring H3 hexagons, each computed from its own
    centre, differ only by float noise). Touching pairs that share no whole
    segment (T-junctions in village polygons) are measured exactly: the
    boundary of ``i`` inside ``j`` grown by ``tolerance_m``; a corner touch
    yields a few tolerances of length and is dropped by ``min_shared_m``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = np.array([box(0, 0, 10, 10), box(10, 0, 20, 10), box(20, 10, 30, 20)])
    >>> shared_edge_pairs(g).tolist()
    [[0, 1]]
    """
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) < 2:
        return np.empty((0, 2), dtype=np.int64)
    fast = _segment_pairs(geoms, tolerance_m, min_shared_m)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    n = len(geoms)
    if len(fast):
        known = np.isin(left * n + right, fast[:, 0] * n + fast[:, 1])
        left, right = left[~known], right[~known]
    if len(left):
        grown = shapely.buffer(geoms[np.unique(right)], tolerance_m, quad_segs=1)
        lookup = np.full(n, -1)
        lookup[np.unique(right)] = np.arange(len(grown))
        inter = shapely.intersection(shapely.boundary(geoms[left]), grown[lookup[right]])
        ok = shapely.length(inter) > min_shared_m
        left, right = left[ok], right[ok]
    pairs = np.vstack([fast, np.column_stack([left, right]).astype(np.int64)])
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def pairs_to_csr(pairs: np.ndarray, n: int) -> sparse.csr_array:
    """Symmetric boolean CSR adjacency from undirected index pairs."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    adj = sparse.csr_array((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n))
    adj.sum_duplicates()
    adj.sort_indices()
    return adj


def connect_components(adjacency, xy: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """Join the components of ``adjacency`` by virtual edges (the islands rule).

    Parameters
    ----------
    adjacency : scipy sparse (n, n)
        Real adjacency.
    xy : ndarray (n, 2)
        Cell centroids in metres.

    Returns
    -------
    (csr_array, ndarray)
        The augmented adjacency and the virtual edges as an ``(m, 2)`` int array.

    Examples
    --------
    >>> a = pairs_to_csr(np.array([[0, 1]]), 3)
    >>> aug, virtual = connect_components(a, np.array([[0, 0], [1, 0], [5, 0]]))
    >>> virtual.tolist()
    [[1, 2]]
    """
    adj = sparse.csr_array(adjacency, dtype=bool)
    n = adj.shape[0]
    xy = np.asarray(xy, dtype=float)
    ncomp, label = connected_components(adj, directed=False)
    virtual: list[tuple[int, int]] = []
    if ncomp > 1:
        tree = cKDTree(xy)
        parent = np.arange(ncomp)

        def find(c: int) -> int:
            while parent[c] != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
            return c

        while True:
            comp = np.array([find(c) for c in label])
            roots = np.unique(comp)
            if len(roots) == 1:
                break
            best: dict[int, tuple[float, int, int]] = {}
            k = min(n, 16)
            dist, idx = tree.query(xy, k=k)
            dist, idx = dist.reshape(n, k), idx.reshape(n, k)
            foreign = comp[idx] != comp[:, None]
            for i in np.flatnonzero(foreign.any(axis=1)):
                j = int(np.argmax(foreign[i]))
                cand = (float(dist[i, j]), min(i, int(idx[i, j])), max(i, int(idx[i, j])))
                if comp[i] not in best or cand < best[comp[i]]:
                    best[comp[i]] = cand
            for r in roots:
                if r in best:
                    continue
                # Every point of this component had only own-component neighbours
                # among its k nearest: search the rest exactly.
                inside = np.flatnonzero(comp == r)
                outside = np.flatnonzero(comp != r)
                d, j = cKDTree(xy[outside]).query(xy[inside])
                b = int(np.argmin(d))
                a, o = int(inside[b]), int(outside[j[b]])
                best[r] = (float(d[b]), min(a, o), max(a, o))
            for _d, i, j in sorted(best.values()):
                ri, rj = find(comp[i]), find(comp[j])
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
                    virtual.append((i, j))
    vedges = np.array(virtual, dtype=np.int64).reshape(-1, 2)
    if len(vedges) == 0:
        return adj, vedges
    rows, cols = adj.nonzero()
    pairs = np.vstack([np.column_stack([rows, cols]), vedges])
    return pairs_to_csr(pairs, n), vedges


def cell_adjacency(
    cells: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    connect_islands: bool = True,
    return_virtual: bool = False,
    tolerance_m: float = 0.01,
    min_shared_m: float = 1.0,
):
    """Edge adjacency of grid cells as a boolean CSR matrix.

    Parameters
    ----------
    cells : GeoDataFrame or GeoSeries
        Cell polygons, EPSG:4326 (measured in the CRS of :func:`grid.projection.metric_crs`)
        or already metric.
    connect_islands : bool
        Apply the islands rule (module docstring): join components by virtual edges.
    return_virtual : bool
        Also return the virtual edges as an ``(m, 2)`` array of row pairs.
    tolerance_m, min_shared_m : float
        Snapping tolerance, and the shortest shared boundary that counts as an edge.

    Returns
    -------
    csr_array (n, n) bool, or (csr_array, ndarray) when ``return_virtual``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = gpd.GeoSeries([box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 1, 3, 2)], crs=3857)
    >>> adj, virtual = cell_adjacency(g, return_virtual=True)
    >>> adj.toarray().astype(int).tolist(), virtual.tolist()
    ([[0, 1, 0], [1, 0, 1], [0, 1, 0]], [[1, 2]])
    """
    geoms = _metric_geoms(cells)
    adj = pairs_to_csr(
        shared_edge_pairs(geoms, tolerance_m=tolerance_m, min_shared_m=min_shared_m), len(geoms)
    )
    virtual = np.empty((0, 2), dtype=np.int64)
    if connect_islands and len(geoms) > 1:
        xy = shapely.get_coordinates(shapely.centroid(geoms))
        adj, virtual = connect_components(adj, xy)
    return (adj, virtual) if return_virtual else adj


def neighbour_lists(adjacency) -> list[list[int]]:
    """Python neighbour lists of a CSR adjacency (fast to walk in loops)."""
    adj = sparse.csr_array(adjacency)
    idx = adj.indices.tolist()
    ptr = adj.indptr.tolist()
    return [idx[ptr[i] : ptr[i + 1]] for i in range(adj.shape[0])]


def count_pieces(nbrs: list[list[int]], members: np.ndarray, assignment: np.ndarray) -> int:
    """Number of connected pieces of the cells ``members`` (all with one owner)."""
    if len(members) == 0:
        return 0
    owner = assignment[members[0]]
    seen: set[int] = set()
    pieces = 0
    for start in members.tolist():
        if start in seen:
            continue
        pieces += 1
        seen.add(start)
        queue = deque([start])
        while queue:
            u = queue.popleft()
            for v in nbrs[u]:
                if v not in seen and assignment[v] == owner:
                    seen.add(v)
                    queue.append(v)
    return pieces


def pieces_per_owner(adjacency, assignment: np.ndarray, k: int) -> np.ndarray:
    """Connected pieces of each owner's cells (0 for owners with no cells), shape (k,)."""
    adj = sparse.coo_array(adjacency)
    a = np.asarray(assignment)
    same = (a[adj.row] == a[adj.col]) & (a[adj.row] >= 0)
    n = len(a)
    sub = sparse.csr_array((np.ones(int(same.sum()), dtype=bool), (adj.row[same], adj.col[same])), shape=(n, n))
    _, label = connected_components(sub, directed=False)
    owned = a >= 0
    pairs = np.unique(np.column_stack([a[owned], label[owned]]), axis=0)
    return np.bincount(pairs[:, 0], minlength=k)[:k] if len(pairs) else np.zeros(k, dtype=np.int64)


def stays_connected(nbrs: list[list[int]], assignment, cell: int, size: int, *, cuts=None) -> bool:
    """True if removing ``cell`` leaves the rest of its owner's cells in one piece.

    ``size`` is the owner's cell count. A local check around the cell decides
    most cases; when it fails, ``cuts`` (a :class:`grid.territories.cuts.TerritoryCuts`
    kept by the caller) answers from one search of the whole territory, else the
    territory is walked. Either way territories of any size are judged exactly.
    """
    owner = assignment[cell]
    same = [v for v in nbrs[cell] if assignment[v] == owner]
    if len(same) <= 1:
        return len(same) == 1 or size == 1
    targets = set(same)
    # Quickest: the owner's neighbours of `cell` already touch one another (an arc of a hexagon).
    reached = {same[0]}
    stack = [same[0]]
    while stack:
        u = stack.pop()
        nu = nbrs[u]
        for v in same:
            if v not in reached and v in nu:
                reached.add(v)
                stack.append(v)
    if len(reached) == len(same):
        return True
    # Local: connect the owner's neighbours through the ring of cells around `cell`.
    ring = set(same)
    for v in same:
        for w in nbrs[v]:
            if w != cell and assignment[w] == owner:
                ring.add(w)
    seen = {same[0]}
    queue = deque([same[0]])
    found = 1
    while queue and found < len(targets):
        u = queue.popleft()
        for v in nbrs[u]:
            if v in ring and v not in seen:
                seen.add(v)
                found += v in targets
                queue.append(v)
    if found == len(targets):
        return True
    if cuts is not None:
        return cuts.removable(assignment, cell, size)
    # Full walk of the owner's territory without `cell`.
    seen = {cell, same[0]}
    queue = deque([same[0]])
    while queue:
        u = queue.popleft()
        for v in nbrs[u]:
            if v not in seen and assignment[v] == owner:
                seen.add(v)
                queue.append(v)
    return len(seen) - 1 == size - 1
