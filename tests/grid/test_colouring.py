"""grid.colouring: neighbouring territories never share a colour, whatever the number of RMs."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from grid.colouring import colour_territories, territory_pairs


def _lattice(width: int, height: int, owner_of) -> tuple[dict, list]:
    """Cells (x, y) of a width x height lattice with edge neighbours, owned by owner_of(x, y)."""
    owners = {(x, y): owner_of(x, y) for x in range(width) for y in range(height)}
    pairs = [((x, y), (x + 1, y)) for x in range(width - 1) for y in range(height)]
    pairs += [((x, y), (x, y + 1)) for x in range(width) for y in range(height - 1)]
    return owners, pairs


def test_territory_pairs_ignores_unowned_and_same_owner():
    owners = {"a": "R1", "b": "R1", "c": "R2", "d": None}
    assert territory_pairs(owners, [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]) == {("R1", "R2")}


def test_68_rms_in_two_rows_no_neighbours_alike_and_few_colours():
    # 34 RMs per row, each a 2x2 block: the old palette of 14 gave RM00 and RM14 the same blue, and a row of
    # 34 cycles it more than twice; RM k sits above RM k+34.
    owners, pairs = _lattice(68, 4, lambda x, y: f"R{x // 2 + 34 * (y // 2):02d}")
    colours = colour_territories(owners, pairs)
    assert len(colours) == 68
    for a, b in territory_pairs(owners, pairs):
        assert colours[a] != colours[b], (a, b)
    assert max(colours.values()) + 1 <= 4


def test_unowned_cells_and_lonely_territories():
    assert colour_territories({"a": None}, []) == {}
    assert colour_territories({"a": "R1", "b": None, "c": "R2"}, [("a", "b"), ("b", "c")]) == {"R1": 0, "R2": 0}


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(1, 12), st.randoms(use_true_random=False))
def test_any_partition_of_a_lattice_is_properly_coloured(w, h, k, rnd):
    owners, pairs = _lattice(w, h, lambda x, y: f"R{rnd.randrange(k)}" if rnd.random() > 0.1 else None)
    colours = colour_territories(owners, pairs)
    assert set(colours) == {o for o in owners.values() if o is not None}
    for (a, b) in itertools.chain(territory_pairs(owners, pairs)):
        assert colours[a] != colours[b]
    # deterministic
    assert colour_territories(owners, pairs) == colours
