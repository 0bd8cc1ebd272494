"""Seeded synthetic bank data for the demo, around the real village list.

No public list of a rural bank's outlets, staff or customers exists, so the
demo generates them: legal entities, outlets (网点), service points
(便民服务点), RMs, customers, visits, leads and tags.  Every function takes a
numpy ``Generator`` (or seed) and returns a DataFrame with exactly the
canonical import columns of docs/fields.md (:data:`FIELDS`), so the output can
be written to CSV and loaded through the same importers users use.  Customers
come as an iterator of bounded chunks.

Typical order (WGS84 villages and counties)::

    rng = np.random.default_rng(seed)
    villages = village_households(villages, county_population, rng)
    entities = legal_entities(counties)
    outs = outlets(villages, counties, 17, rng)
    points = service_points(villages, outs, 0.8, rng)
    staff = rms(outs, rng=rng)
    for chunk in customers(villages, n, rng, entity_of=entity_by_county(entities)):
        ...
    visits(sample, staff, rng=rng, outlets=outs); leads(sample, rng); tags(sample, rng)

The modules behind it: :mod:`grid.synth.common` (columns, names, phones, ID
numbers), :mod:`grid.synth.villages` (households), :mod:`grid.synth.network`
(entities, outlets, service points, RMs), :mod:`grid.synth.customers`, :mod:`grid.synth.activity`.
"""

from grid.synth.activity import LEAD_TYPES, TAGS, leads, tags, visits
from grid.synth.common import AS_OF, FIELDS, id_check_char
from grid.synth.customers import SEGMENTS, customers
from grid.synth.network import entity_by_county, legal_entities, outlets, rms, service_points
from grid.synth.villages import PERSONS_PER_HOUSEHOLD, village_households

__all__ = [
    "AS_OF",
    "FIELDS",
    "LEAD_TYPES",
    "PERSONS_PER_HOUSEHOLD",
    "SEGMENTS",
    "TAGS",
    "customers",
    "entity_by_county",
    "id_check_char",
    "leads",
    "legal_entities",
    "outlets",
    "rms",
    "service_points",
    "tags",
    "village_households",
    "visits",
]
