"""Routes from the collections catalog: one list route and one get route per ``geodata.catalog`` entry.

A collection with geometry answers GeoJSON (a FeatureCollection with OGC-style
counts, a Feature), one without answers ``{items, total, next_offset}`` and the
plain item. Scope is the entry's rule, applied in SQL by
``geodata.reads.collections``; personal fields named by the entry's masking
rule are masked by role (``api.masking``). Response models are built from the
entry's fields, so the OpenAPI document shows each collection's real shape.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, create_model
from pydantic import Field as PydanticField

from api.deps import BboxQuery, ConnDep, PageDep, ScopeDep
from api.geojson import collection, to_feature
from api.masking import mask_record
from geodata.catalog import Collection, Param
from geodata.reads import collections as reads

WithGeometry = Annotated[bool, Query(description="Include geometries (false gives a much lighter answer).")]
GeoJSONGeometry = dict[str, Any]


def public_model(coll: Collection, *, name: str | None = None, fields: tuple[str, ...] | None = None,
                 **extra: Any) -> type[BaseModel]:
    """``<Model>Public``: the entry's fields (or those of ``fields``) as a pydantic model, plus ``extra``."""
    chosen = coll.fields if fields is None else tuple(coll.field(n) for n in fields)
    spec: dict[str, Any] = {}
    for f in chosen:
        if f.name == coll.key.name:
            spec[f.name] = (f.type, PydanticField(description=f.description or coll.key.description))
        else:
            spec[f.name] = (f.type | None, PydanticField(None, description=f.description or None))
    model = create_model(name or f"{coll.model}Public", **spec, **extra)
    model.__doc__ = f"One {coll.label}" + (f" (masked by role: {', '.join(coll.masked)})." if coll.masked else ".")
    return model


def _feature_models(coll: Collection, props: type[BaseModel]) -> tuple[type[BaseModel], type[BaseModel]]:
    feature = create_model(
        f"{coll.model}Feature", type=(Literal["Feature"], "Feature"), id=(coll.key.type, ...),
        geometry=(GeoJSONGeometry | None, PydanticField(None, description="GeoJSON geometry (WGS84), or null.")),
        properties=(props, ...))
    feature.__doc__ = f"One {coll.label} as a GeoJSON Feature."
    page = create_model(
        f"{coll.model}Collection", type=(Literal["FeatureCollection"], "FeatureCollection"),
        features=(list[feature], ...),
        numberMatched=(int, PydanticField(description="Items matching the query, over all pages.")),
        numberReturned=(int, PydanticField(description="Items in this answer.")),
        next_offset=(int | None, PydanticField(None, description="Offset of the next page (null on the last).")))
    page.__doc__ = f"A page of {coll.id} as a GeoJSON FeatureCollection."
    return feature, page


def page_model(item: type[BaseModel], name: str) -> type[BaseModel]:
    """``{items, total, next_offset}`` of ``item``."""
    model = create_model(
        name, items=(list[item], ...),
        total=(int, PydanticField(description="Items matching the query, over all pages.")),
        next_offset=(int | None, PydanticField(None, description="Offset of the next page (null on the last).")))
    model.__doc__ = f"A page of {item.__name__} items."
    return model


def _annotation(p: Param, where: type) -> Any:
    checks = {k: v for k, v in (("pattern", p.pattern), ("max_length", p.max_length), ("ge", p.ge), ("le", p.le))
              if v is not None}
    return Annotated[p.type if where is Path else p.type | None, where(description=p.description, **checks)]


def _signature(fn, params: list[tuple[str, Any, Any]]) -> None:
    """Give ``fn`` (taking ``**kw``) the signature FastAPI reads its parameters from."""
    fn.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                          **({} if default is inspect.Parameter.empty else {"default": default}))
        for name, ann, default in params])


def collection_routes(router: APIRouter, coll: Collection, *, path: str, key_param: str,
                      list_doc: str | None = None, get_doc: str | None = None) -> None:
    """Add ``GET {path}`` (a page of the collection) and ``GET {path}/{key_param}`` (one item) to ``router``."""
    props = public_model(coll)
    geo = coll.geometry is not None
    if geo:
        feature, page = _feature_models(coll, props)
    else:
        feature, page = props, page_model(props, f"{coll.model}Page")
    filter_names = [p.name for p in coll.filters]

    def masked(row: dict[str, Any], scope) -> dict[str, Any]:
        return mask_record(row, scope, coll.masked) if coll.masked else row

    def list_items(**kw: Any) -> dict:
        page_, scope = kw["page"], kw["scope"]
        rows, total = reads.list_items(kw["conn"], coll, scope=scope, limit=page_.limit, offset=page_.offset,
                                       bbox=kw.get("bbox"), geometry=kw.get("geometry", False),
                                       filters={n: kw[n] for n in filter_names})
        rows = [masked(r, scope) for r in rows]
        if geo:
            return collection(rows, total, page_, coll.key.name)
        nxt = page_.offset + len(rows)
        return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}

    empty = inspect.Parameter.empty
    params = [("conn", ConnDep, empty), ("scope", ScopeDep, empty), ("page", PageDep, empty)]
    if geo:
        params += [("bbox", BboxQuery, None), ("geometry", WithGeometry, True)]
    params += [(p.name, _annotation(p, Query), None) for p in coll.filters]
    _signature(list_items, params)
    list_items.__name__ = f"list_{coll.table}"
    router.add_api_route(path, list_items, methods=["GET"], response_model=page,
                         summary=f"List {coll.id}", description=list_doc or coll.description)

    def get_item(**kw: Any) -> dict:
        row = masked(reads.get_item(kw["conn"], coll, scope=kw["scope"], key=kw[key_param],
                                    geometry=kw.get("geometry", False)), kw["scope"])
        return to_feature(row, coll.key.name) if geo else row

    params = [(key_param, _annotation(coll.key, Path), empty), ("conn", ConnDep, empty), ("scope", ScopeDep, empty)]
    if geo:
        params.append(("geometry", WithGeometry, True))
    _signature(get_item, params)
    get_item.__name__ = f"get_{coll.table}"
    router.add_api_route(f"{path}/{{{key_param}}}", get_item, methods=["GET"], response_model=feature,
                         summary=f"Get one {coll.label}",
                         description=get_doc or f"One {coll.label} (404 when it does not exist or is outside your scope).")
