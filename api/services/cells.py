"""Per-cell lead and tag figures from the services (or the local tables), and deep links.

With ``lead_api`` / ``tag_api`` configured, the customer ids of the cells are
read from ``customer_cell`` and sent to the service in batches (contract:
``docs/services-openapi.yaml``); without, the figures are counted from the
local ``lead`` / ``customer_tag`` tables filled by ``gridmkt import leads|tags``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from urllib.parse import quote

from sqlalchemy.engine import Connection

from api.services.client import CircuitBreaker, ServiceClient, Unavailable
from api.settings import LinkSettings
from geodata import leads_tags
from geodata.scope import Scope

BATCH = 500
# Keep each request's id list short enough for common URL limits (8 KB request lines).
BATCH_CHARS = 6000
# Above this many customers a request is refused rather than fanned out into hundreds of calls.
MAX_CUSTOMERS = 50_000
# Leads pages followed per batch (the contract's next_cursor), so a broken server cannot loop us.
MAX_PAGES = 50

_clients: dict[tuple, ServiceClient] = {}
_clients_lock = threading.Lock()


def client_for(service: str, links: LinkSettings) -> ServiceClient | None:
    """The shared client of ``service`` ('leads' or 'tags'), None when its API is not configured.

    Clients (and so their circuit breakers) live for the process, one per
    service and configuration.
    """
    base, token = ((links.lead_api, links.lead_api_token) if service == "leads"
                   else (links.tag_api, links.tag_api_token))
    if not base:
        return None
    key = (service, base, token, links.timeout_s, links.attempts, links.breaker_failures,
           links.breaker_cooldown_s)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            breaker = CircuitBreaker(failures=links.breaker_failures, cooldown_s=links.breaker_cooldown_s)
            client = ServiceClient(service, base, token=token, timeout_s=links.timeout_s,
                                   attempts=links.attempts, breaker=breaker)
            _clients[key] = client
        return client


def reset_clients() -> None:
    """Close every shared client and forget its breaker state (tests, reconfiguration)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def batches(ids: Sequence[str], size: int = BATCH, chars: int = BATCH_CHARS) -> Iterator[list[str]]:
    """Consecutive chunks of at most ``size`` ids whose comma-joined length stays under ``chars``."""
    chunk: list[str] = []
    length = 0
    for cid in ids:
        if chunk and (len(chunk) >= size or length + len(cid) + 1 > chars):
            yield chunk
            chunk, length = [], 0
        chunk.append(cid)
        length += len(cid) + 1
    if chunk:
        yield chunk


def _cell_of(conn: Connection, grid_id: int, cell_ids: Sequence[str],
             scope: Scope | None) -> dict[str, str] | Unavailable:
    per_cell = leads_tags.customers_by_cell(conn, grid_id=grid_id, cell_ids=cell_ids, scope=scope)
    cell_of = {cid: cell for cell, ids in per_cell.items() for cid in ids}
    if len(cell_of) > MAX_CUSTOMERS:
        return Unavailable("local", f"{len(cell_of)} customers in these cells; ask for fewer cells "
                                    f"(at most {MAX_CUSTOMERS} customers per request)")
    return cell_of


def open_leads_by_cell(conn: Connection, *, grid_id: int, cell_ids: Sequence[str],
                       settings: LinkSettings,
                       scope: Scope | None = None) -> dict[str, dict[str, int]] | Unavailable:
    """Open leads per cell and lead type, ``{cell_id: {lead_type: count}}``, or Unavailable.

    Every cell of ``cell_ids`` is a key (with ``{}`` when it has none). The
    caller has already restricted ``cell_ids`` to the cells the user may see;
    ``scope`` further limits which customers are counted.
    """
    client = client_for("leads", settings)
    if client is None:
        return leads_tags.open_leads_by_cell(conn, grid_id=grid_id, cell_ids=cell_ids, scope=scope)
    cell_of = _cell_of(conn, grid_id, cell_ids, scope)
    if isinstance(cell_of, Unavailable):
        return cell_of
    out: dict[str, dict[str, int]] = {c: {} for c in cell_ids}
    for chunk in batches(sorted(cell_of)):
        cursor = None
        for _ in range(MAX_PAGES):
            params = {"customer_ids": ",".join(chunk), "status": "open"}
            if cursor:
                params["cursor"] = cursor
            data = client.get_json("/leads", params)
            if isinstance(data, Unavailable):
                return data
            for lead in data.get("leads") or ():
                cell = cell_of.get(lead.get("customer_id")) if isinstance(lead, dict) else None
                # Defensive: count only open leads of customers we asked about.
                if cell is not None and lead.get("status", "open") == "open":
                    kind = str(lead.get("lead_type") or "unknown")
                    out[cell][kind] = out[cell].get(kind, 0) + 1
            cursor = data.get("next_cursor")
            if not cursor:
                break
        else:
            return Unavailable("leads", f"lead service returned more than {MAX_PAGES} pages for one batch")
    return out


def tagged_customers_by_cell(conn: Connection, *, grid_id: int, cell_ids: Sequence[str], tag: str,
                             settings: LinkSettings,
                             scope: Scope | None = None) -> dict[str, int] | Unavailable:
    """Customers carrying ``tag`` per cell, ``{cell_id: count}``, or Unavailable.

    Every cell of ``cell_ids`` is a key (0 when none carry the tag).
    """
    client = client_for("tags", settings)
    if client is None:
        return leads_tags.tagged_customers_by_cell(conn, grid_id=grid_id, cell_ids=cell_ids, tag=tag,
                                                   scope=scope)
    cell_of = _cell_of(conn, grid_id, cell_ids, scope)
    if isinstance(cell_of, Unavailable):
        return cell_of
    out = dict.fromkeys(cell_ids, 0)
    for chunk in batches(sorted(cell_of)):
        data = client.get_json("/customers/tags", {"ids": ",".join(chunk), "tag": tag})
        if isinstance(data, Unavailable):
            return data
        seen: set[str] = set()
        for item in data.get("customers") or ():
            if not isinstance(item, dict):
                continue
            cid = item.get("customer_id")
            # A customer counts once, and only when the service says it carries the tag.
            if cid in cell_of and cid not in seen and tag in (item.get("tags") or ()):
                seen.add(cid)
                out[cell_of[cid]] += 1
    return out


def customer_links(settings: LinkSettings, customer_id: str) -> dict[str, str]:
    """Deep links of one customer: ``{"tags": url, "leads": url}`` from the ``{customer_id}`` templates."""
    cid = quote(customer_id, safe="")
    # str.replace, not str.format: a template may hold other braces of its own.
    return {"tags": settings.tag_url.replace("{customer_id}", cid),
            "leads": settings.lead_url.replace("{customer_id}", cid)}


def cell_links(settings: LinkSettings, customer_ids: Sequence[str]) -> dict[str, str]:
    """Deep links for a cell's customers: ``{customer_ids}`` becomes the encoded, comma-joined ids."""
    ids = ",".join(quote(c, safe="") for c in customer_ids)
    return {"tags": settings.tag_cell_url.replace("{customer_ids}", ids),
            "leads": settings.lead_cell_url.replace("{customer_ids}", ids)}
