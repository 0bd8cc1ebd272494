"""Class breaks: literal cases, few unique values, no data, and invariants over random values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from maps.classify import NO_DATA, class_breaks, rm_colors


def test_breaks_separate_obvious_groups():
    c = class_breaks([1, 2, 3, 50, 51, 52, 100, 101, 102, 500, 501, 900], k=5)
    assert len(c.bins) == 5 and c.bins[-1] == 900
    colors = c.color_of([1, 3, 500, 900])
    assert colors[0] == colors[1] != colors[2] != colors[3]
    assert c.labels[0].startswith("1 – ")


def test_few_unique_values_are_their_own_classes():
    c = class_breaks([0, 0, 5, 5, 5], k=5)
    assert c.bins == (0.0, 5.0) and c.labels == ("0", "5")
    assert c.color_of([0, 5]) == [c.colors[0], c.colors[1]]


def test_no_finite_values_is_one_no_data_class():
    c = class_breaks([np.nan, np.inf], k=5)
    assert c.colors == (NO_DATA,)
    assert class_breaks([1.0, 2.0]).color_of([np.nan]) == [NO_DATA]


def test_quantiles_scheme():
    c = class_breaks(np.arange(100), k=4, scheme="quantiles")
    assert c.bins == (24.75, 49.5, 74.25, 99.0)


def test_rm_colors_stable_and_distinct():
    a = rm_colors(["R2", "R1", None, "R3"])
    assert list(a) == ["R1", "R2", "R3"] and len(set(a.values())) == 3
    assert rm_colors(["R3", "R1", "R2"]) == a


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=150),
       st.integers(min_value=2, max_value=7), st.sampled_from(["natural_breaks", "quantiles"]))
def test_every_value_falls_in_a_class_that_covers_it(values, k, scheme):
    c = class_breaks(values, k=k, scheme=scheme)
    assert len(c.bins) <= k and list(c.bins) == sorted(set(c.bins))
    assert len(c.colors) == len(c.bins) == len(c.labels)
    assert max(values) <= c.bins[-1] + 1e-6 * max(1.0, abs(c.bins[-1]))
    idx = np.searchsorted(np.asarray(c.bins), np.asarray(values), side="left")
    colors = c.color_of(values)
    for v, i, col in zip(values, idx, colors, strict=True):
        i = min(i, len(c.bins) - 1)
        assert col == c.colors[i] and v <= c.bins[i] + 1e-6 * max(1.0, abs(c.bins[i]))
        assert i == 0 or v > c.bins[i - 1]


def test_many_ties_finish_and_keep_zero_apart():
    values = [0.0] * 500 + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    for scheme in ("quantiles", "natural_breaks"):
        c = class_breaks(values, k=5, scheme=scheme)
        assert c.bins[0] == 0.0 and c.bins[-1] == 10.0, scheme
