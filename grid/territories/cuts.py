"""Cut cells of territories: which cells a territory can give away and stay one piece, at any size.

A cell can leave its territory without splitting it unless it is a cut vertex
(articulation point) of the territory's cells. :class:`TerritoryCuts` finds
them for a whole territory in one depth-first search (Hopcroft-Tarjan,
iterative) and keeps the answer until the territory changes, so the move loops
ask about every border cell of a large territory for the price of one walk
instead of one walk per cell. The same search gives the pieces a cut cell
would leave behind, so a chain can move a cut cell together with the small
pieces it cuts off (:mod:`grid.territories.chain`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Search:
    """One depth-first search over a territory: preorder, subtree sizes and the pieces each cell would cut off."""

    order: list[int]  # cells in preorder
    index: dict[int, int]  # cell -> preorder position
    subtree: list[int]  # cells in the subtree of each position
    separated: dict[int, list[int]]  # position -> child positions whose subtrees removing it cuts off
    whole: bool  # the territory was one piece when searched


class TerritoryCuts:
    """Cut cells of each owner's territory, searched on demand and forgotten when the owner changes.

    ``touch(owner)`` must be called whenever a cell joins or leaves ``owner``
    (:class:`grid.territories.solver._Mover` does).

    Examples
    --------
    >>> nbrs = [[1], [0, 2], [1, 3], [2]]  # a line 0-1-2-3
    >>> cuts = TerritoryCuts(nbrs)
    >>> a = [0, 0, 0, 1]
    >>> cuts.removable(a, 1, 3), cuts.removable(a, 0, 3), cuts.cut_off(a, 1, 3)
    (False, True, [1, 0])
    """

    def __init__(self, nbrs: list[list[int]]) -> None:
        self.nbrs = nbrs
        self._version: dict[int, int] = {}
        self._cache: dict[int, tuple[int, _Search]] = {}

    def touch(self, owner: int) -> None:
        """Forget what is known about ``owner``'s territory."""
        self._version[owner] = self._version.get(owner, 0) + 1

    def _search(self, a, cell: int, size: int) -> _Search:
        owner = a[cell]
        version = self._version.get(owner, 0)
        hit = self._cache.get(owner)
        if hit is not None and hit[0] == version and cell in hit[1].index:
            return hit[1]
        nbrs = self.nbrs
        order, index = [cell], {cell: 0}
        parent, low, subtree = [-1], [0], [1]
        separated: dict[int, list[int]] = {}
        stack = [(cell, iter(nbrs[cell]))]
        while stack:
            v, it = stack[-1]
            iv = index[v]
            for w in it:
                if a[w] != owner:
                    continue
                iw = index.get(w)
                if iw is None:
                    index[w] = len(order)
                    order.append(w)
                    parent.append(iv)
                    low.append(len(order) - 1)
                    subtree.append(1)
                    stack.append((w, iter(nbrs[w])))
                    break
                if iw != parent[iv] and iw < low[iv]:
                    low[iv] = iw
            else:
                stack.pop()
                up = parent[iv]
                if up >= 0:
                    if low[iv] < low[up]:
                        low[up] = low[iv]
                    subtree[up] += subtree[iv]
                    if low[iv] >= up:
                        separated.setdefault(up, []).append(iv)
        found = _Search(order, index, subtree, separated, whole=len(order) == size)
        self._cache[owner] = (version, found)
        return found

    def _pieces(self, s: _Search, i: int) -> list[tuple[int, int]]:
        """Pieces left when the cell at position ``i`` goes: (first position, count), start -1 for the rest.

        The rest is the part above ``i`` with the subtrees of its children that reach above it.
        """
        pieces = [(k, s.subtree[k]) for k in s.separated.get(i, [])]
        rest = len(s.order) - 1 - sum(c for _, c in pieces)
        if rest > 0:
            pieces.append((-1, rest))
        return pieces

    def removable(self, a, cell: int, size: int) -> bool:
        """True if ``cell`` can leave its territory (``size`` cells) and leave the rest in one piece."""
        if size <= 1:
            return size == 1
        s = self._search(a, cell, size)
        return s.whole and len(self._pieces(s, s.index[cell])) <= 1

    def cut_off(self, a, cell: int, size: int) -> list[int] | None:
        """``cell`` and the pieces its leaving would cut off, the largest piece staying; None if it cuts nothing off."""
        s = self._search(a, cell, size)
        if not s.whole:
            return None
        i = s.index[cell]
        pieces = self._pieces(s, i)
        if len(pieces) < 2:
            return None
        pieces.sort(key=lambda t: t[1])
        group = [cell]
        for start, count in pieces[:-1]:
            if start >= 0:
                group += s.order[start : start + count]
            else:
                out = {i}
                for k in s.separated.get(i, []):
                    out.update(range(k, k + s.subtree[k]))
                group += [c for k, c in enumerate(s.order) if k not in out]
        return group
