"""County boundaries from GeoJSON, Shapefile or GeoPackage (read with pyogrio)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geodata import tables
from geodata.errors import BadInput
from geodata.importers.base import Kind
from geodata.readers import LINE, _map_columns, aliases
from grid.chinacrs import to_wgs84

GEOM = "__geometry_ewkb"


def to_multipolygons(geoms: np.ndarray, crs: str) -> np.ndarray:
    """Polygons converted to WGS84, repaired, as MultiPolygons (None where nothing polygonal is left)."""
    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], crs)
        return np.column_stack([lon, lat])

    out = shapely.transform(geoms, convert)
    out = np.where(shapely.is_valid(out), out, shapely.make_valid(out))
    result = np.full(len(out), None, dtype=object)
    for i, g in enumerate(out):
        if g is None or g.is_empty:
            continue
        parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")]
        polys = [q for p in parts for q in getattr(p, "geoms", [p])]
        if polys:
            result[i] = shapely.MultiPolygon(polys)
    return result


@dataclass
class LayerSource:
    """A vector layer opened for import, shaped like :class:`geodata.readers.TableSource`."""

    path: Path
    frame: pd.DataFrame
    columns: list[str]
    mapping: dict[str, str]
    ignored: list[str]
    encoding: str | None = None
    header_line: int = 0
    invalid_rows: list = field(default_factory=list)

    def chunks(self, chunk_size: int = 0) -> Iterator[pd.DataFrame]:
        yield self.frame

    def fraction_read(self) -> float:
        return 1.0


def open_layer(path: Path, *, kind: Kind, crs: str, mapping: Mapping[str, str] | None = None,
               encoding: str | None = None) -> LayerSource:
    """Read every feature: attributes as text, geometry as WGS84 MultiPolygon hex EWKB."""
    import pyogrio

    try:
        gdf = pyogrio.read_dataframe(path, encoding=encoding) if encoding else pyogrio.read_dataframe(path)
    except Exception as exc:  # GDAL reports unreadable files with many exception types
        raise BadInput(f"{path.name}: cannot be read as GeoJSON/Shapefile/GeoPackage ({exc})") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        # A CSV or a table without shapes reads fine but has nothing to import as boundaries.
        raise BadInput(f"{path.name}: has no geometry; {kind.name} need boundary polygons "
                       "(GeoJSON, Shapefile or GeoPackage)")
    attrs = [c for c in gdf.columns if c != gdf.geometry.name]
    col_to_field = _map_columns(attrs, aliases(kind.name, tuple(kind.fields)), tuple(kind.fields),
                                mapping or {}, path.name)
    frame = pd.DataFrame({c: gdf[c].map(_text).astype("str") for c in attrs})
    geoms = to_multipolygons(gdf.geometry.to_numpy(), crs)
    frame[GEOM] = [
        None if g is None else shapely.to_wkb(shapely.set_srid(g, 4326), hex=True, include_srid=True)
        for g in geoms
    ]
    # The 'line' of a feature is its position in the layer, 1-based.
    frame[LINE] = np.arange(1, len(frame) + 1)
    return LayerSource(
        path=path, frame=frame, columns=attrs, mapping={f: c for c, f in col_to_field.items()},
        ignored=[c for c in attrs if c not in col_to_field],
    )


def _text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _check_county(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    hexes = ctx.extra["raw"][GEOM]
    rej.add(hexes.isna().to_numpy(), "geometry", "no polygon in this feature")
    out["geom"] = hexes


COUNTIES = Kind(
    name="counties", table=tables.county, key=("adcode",),
    fields={"adcode": "code6", "name": "text", "city_code": "text", "legal_entity": "legal_entity"},
    required=("adcode", "name"), point="geometry", check=_check_county,
)
