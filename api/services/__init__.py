"""Links to the bank's customer-tag (客户标签) and lead (营销线索) services.

``client`` holds the resilient HTTP client (timeouts, retries, circuit
breaker); ``cells`` the per-cell figures and deep links built on it. The
contract expected from the services is ``docs/services-openapi.yaml``.
"""

from api.services.cells import (
    batches,
    cell_links,
    client_for,
    customer_links,
    open_leads_by_cell,
    reset_clients,
    tagged_customers_by_cell,
)
from api.services.client import CircuitBreaker, ServiceClient, Unavailable

__all__ = [
    "CircuitBreaker", "ServiceClient", "Unavailable", "batches", "cell_links", "client_for",
    "customer_links", "open_leads_by_cell", "reset_clients", "tagged_customers_by_cell",
]
