"""Reference data of the signed-in user's legal entity: legal entities, counties, villages, outlets,
service points and RMs (GeoJSON where the objects have a place).

Every route here comes from an entry of ``geodata.catalog`` through
``api.factory.collection_routes``: adding a collection is adding an entry.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.factory import collection_routes
from geodata import catalog

router = APIRouter(prefix="/api/v1", tags=["reference"])

# Each collection, the name of its key in the item path, and what its get route says.
ROUTES = (
    (catalog.LEGAL_ENTITIES, "legal_entity_id", "One legal entity (404 when it does not exist or is not yours)."),
    (catalog.COUNTIES, "adcode", "One county as a GeoJSON Feature (404 when it is not in your legal entity)."),
    (catalog.VILLAGES, "village_code", "One village as a GeoJSON Feature."),
    (catalog.OUTLETS, "outlet_code", "One outlet as a GeoJSON Feature."),
    (catalog.SERVICE_POINTS, "service_point_code", "One service point as a GeoJSON Feature."),
    (catalog.RMS, "rm_code", "One relationship manager (404 when outside your scope)."),
)
for _coll, _key, _doc in ROUTES:
    collection_routes(router, _coll, path=f"/{_coll.id}", key_param=_key, get_doc=_doc)
