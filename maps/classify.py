"""Class breaks and colours for choropleth cells (mapclassify), robust to few unique values."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mapclassify
import numpy as np

# ColorBrewer YlOrRd (5) and a longer sequence for k up to 7; light = low.
PALETTE = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026", "#800026")
NO_DATA = "#d9d9d9"
# Distinct colours for territories (one per RM), Tableau 10 plus extras.
RM_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
             "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")


# Outline colours of territories coloured as a map (grid.colouring): neighbours never share one, so a
# handful suffices; dark enough to read as lines on light cells. ColorBrewer Dark2 plus two.
TERRITORY_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4",
                    "#666666", "#b2182b")


@dataclass(frozen=True)
class Classes:
    """Upper bounds of each class (ascending), their colours and legend labels."""

    bins: tuple[float, ...]
    colors: tuple[str, ...]
    labels: tuple[str, ...]

    def color_of(self, values) -> list[str]:
        """Colour per value; NaN gets the no-data grey."""
        v = np.asarray(values, dtype=float)
        idx = np.searchsorted(np.asarray(self.bins), v, side="left").clip(0, len(self.bins) - 1)
        return [NO_DATA if np.isnan(x) else self.colors[i] for x, i in zip(v, idx, strict=True)]


def _fmt(x: float) -> str:
    if abs(x) >= 10_000:
        return f"{x / 10_000:,.1f}万"
    return f"{x:,.0f}" if abs(x) >= 10 or float(x).is_integer() else f"{x:,.2f}"


def _natural_breaks(v: np.ndarray, k: int) -> np.ndarray:
    """Fisher-Jenks on 200 evenly spaced quantiles of ``v``: deterministic and under a second.

    Exact Fisher-Jenks (pure Python here) and k-means NaturalBreaks take seconds for
    3,000 cells; Jenks-Caspall never returns on heavily tied data such as many zeros.
    """
    summary = np.quantile(v, np.linspace(0.0, 1.0, 200))
    if len(np.unique(summary)) <= k:
        return mapclassify.Quantiles(v, k=k).bins
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Numba not installed": 200 points are fast enough without
        bins = np.asarray(mapclassify.FisherJenks(summary, k=k).bins, dtype=float)
    bins[-1] = v.max()
    return bins


SCHEMES = {
    # Quantiles: fast, deterministic, fine with the many tied zeros real cells have.
    "quantiles": lambda v, k: mapclassify.Quantiles(v, k=k).bins,
    "natural_breaks": _natural_breaks,
}


def class_breaks(values, k: int = 5, scheme: str = "natural_breaks") -> Classes:
    """Class breaks for ``values`` with at most ``k`` classes (fewer when values are few).

    ``scheme`` is a key of :data:`SCHEMES` (mapclassify classifiers).
    With n unique values and n <= k, each unique value is its own class; with no
    finite value at all, one empty class.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    uniq = np.unique(v)
    if len(uniq) == 0:
        return Classes(bins=(0.0,), colors=(NO_DATA,), labels=("无数据 no data",))
    if len(uniq) <= k:
        bins = tuple(float(u) for u in uniq)
    else:
        found = SCHEMES[scheme](v, k)
        bins = tuple(sorted({float(b) for b in found}))
    colors = _spread(len(bins))
    if len(uniq) <= k:
        labels = [_fmt(b) for b in bins]
    else:
        lows = (float(uniq[0]), *bins[:-1])
        labels = [_fmt(hi) if _fmt(lo) == _fmt(hi) else f"{_fmt(lo)} – {_fmt(hi)}"
                  for lo, hi in zip(lows, bins, strict=True)]
    return Classes(bins=bins, colors=colors, labels=tuple(labels))


def _spread(n: int) -> tuple[str, ...]:
    """n colours spread over the palette (first and last always included)."""
    if n == 1:
        return (PALETTE[3],)
    top = len(PALETTE) - 2 if n <= 5 else len(PALETTE) - 1
    idx = np.linspace(0, top, n).round().astype(int)
    return tuple(PALETTE[i] for i in idx)


def rm_colors(rm_codes) -> dict[str, str]:
    """A stable colour per RM code (sorted order, cycling the palette)."""
    codes = sorted({str(c) for c in rm_codes if c is not None and c == c})
    return {c: RM_COLORS[i % len(RM_COLORS)] for i, c in enumerate(codes)}
