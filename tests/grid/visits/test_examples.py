"""The examples in grid.visits docstrings run and say what they show."""

from __future__ import annotations

import doctest

import pytest

from grid.visits import clock, distances, plan, route, solver, weights


@pytest.mark.parametrize("module", [clock, distances, plan, route, solver, weights], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
