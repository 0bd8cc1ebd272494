"""The service client against a real local server of the contract: retries, timeouts, circuit breaker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import schemathesis
import yaml
from contract_server import ContractServer, closed_port_url
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.services import (
    CircuitBreaker,
    ServiceClient,
    Unavailable,
    batches,
    cell_links,
    customer_links,
)
from api.settings import LinkSettings

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "services-openapi.yaml"

TAGS = {"C1": ["高净值", "养殖户"], "C2": ["养殖户"], "C3": ["高净值"]}
LEADS = [
    {"lead_id": "L1", "customer_id": "C1", "lead_type": "客户关怀", "status": "open"},
    {"lead_id": "L2", "customer_id": "C1", "lead_type": "产品到期", "status": "closed"},
    {"lead_id": "L3", "customer_id": "C2", "lead_type": "逾期提醒", "status": "open"},
]


class FakeClock:
    """A monotonic clock the test moves by hand (the breaker's cool-down without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server():
    with ContractServer(leads=LEADS, tags=TAGS, token="s3cret", slow_s=1.5) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()


def client(server, **kw) -> ServiceClient:
    kw.setdefault("token", "s3cret")
    # Generous: on a busy machine (the whole suite on 2 cores) a first answer took more than 0.5 s. The
    # one test of timeouts sets its own, shorter than the slow mode's delay.
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("attempts", 3)
    return ServiceClient("tags", kw.pop("url", server.url), **kw)


def test_normal_answer_by_the_contract_with_bearer_token(server):
    got = client(server).get_json("/customers/tags", {"ids": "C1,C2,C9", "tag": "高净值"})
    assert got == {"tag": "高净值", "count": 1, "customers": [{"customer_id": "C1", "tags": ["高净值"]}]}
    assert server.hits == 1


def test_wrong_token_is_unavailable_without_retry(server):
    got = client(server, token="wrong").get_json("/leads", {"customer_ids": "C1"})
    assert isinstance(got, Unavailable) and "status 401" in got.reason
    assert server.hits == 1


def test_flaky_service_is_retried_until_it_answers(server):
    server.set_mode("flaky")
    got = client(server).get_json("/leads", {"customer_ids": "C1,C2", "status": "open"})
    assert not isinstance(got, Unavailable)
    assert [lead["lead_id"] for lead in got["leads"]] == ["L1", "L3"]
    assert server.hits == 3  # two 500s, then the answer


def test_flaky_beyond_the_attempts_is_unavailable(server):
    server.flaky_failures = 3
    try:
        server.set_mode("flaky")
        got = client(server, attempts=2).get_json("/leads", {"customer_ids": "C1"})
    finally:
        server.flaky_failures = 2
    assert isinstance(got, Unavailable) and "status 500 after 2 attempts" in got.reason
    assert server.hits == 2


def test_rate_limit_is_retried_after_retry_after(server):
    server.set_mode("ratelimited")
    got = client(server).get_json("/customers/tags", {"ids": "C2"})
    assert got == {"customers": [{"customer_id": "C2", "tags": ["养殖户"]}]}
    assert server.hits == 2


def test_failing_service_is_unavailable_after_bounded_attempts(server):
    server.set_mode("failing")
    got = client(server, attempts=3).get_json("/leads", {"customer_ids": "C1"})
    assert got == Unavailable("tags", "tags service unavailable: status 500 after 3 attempts")
    assert not got
    assert server.hits == 3


def test_slow_service_times_out_once_and_is_unavailable(server):
    server.set_mode("slow")
    got = client(server, timeout_s=0.3).get_json("/leads", {"customer_ids": "C1"})
    assert isinstance(got, Unavailable) and "no answer within 0.3 s" in got.reason
    assert server.hits == 1  # timeouts are not retried


def test_down_service_is_unavailable():
    got = ServiceClient("leads", closed_port_url(), timeout_s=0.5, attempts=2).get_json("/leads", {"customer_ids": "C1"})
    assert isinstance(got, Unavailable)
    assert got.reason == "leads service unavailable: cannot connect (ConnectError) after 2 attempts"


def test_circuit_opens_stops_calling_and_closes_after_cooldown(server):
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=30, clock=clock)
    c = client(server, attempts=1, breaker=breaker)
    server.set_mode("failing")
    for _ in range(3):
        assert isinstance(c.get_json("/leads", {"customer_ids": "C1"}), Unavailable)
    assert server.hits == 3 and breaker.state == "open"
    server.set_mode("normal")  # the service is back, but the breaker does not know yet
    for _ in range(5):
        got = c.get_json("/leads", {"customer_ids": "C1"})
        assert isinstance(got, Unavailable) and "circuit open" in got.reason
    assert server.hits == 3  # nothing reached the server
    clock.now += 29.9
    assert isinstance(c.get_json("/leads", {"customer_ids": "C1"}), Unavailable) and server.hits == 3
    clock.now += 0.2
    assert breaker.state == "half_open"
    got = c.get_json("/leads", {"customer_ids": "C1"})
    assert got["leads"][0]["lead_id"] == "L1"
    assert server.hits == 4 and breaker.state == "closed"


def test_failed_trial_reopens_for_another_cooldown(server):
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, cooldown_s=10, clock=clock)
    c = client(server, attempts=1, breaker=breaker)
    server.set_mode("failing")
    c.get_json("/leads", {"customer_ids": "C1"})
    c.get_json("/leads", {"customer_ids": "C1"})
    clock.now += 10
    assert isinstance(c.get_json("/leads", {"customer_ids": "C1"}), Unavailable)  # the trial
    assert server.hits == 3 and breaker.state == "open"
    clock.now += 5
    c.get_json("/leads", {"customer_ids": "C1"})
    assert server.hits == 3


def test_success_resets_the_consecutive_count(server):
    breaker = CircuitBreaker(failures=2, cooldown_s=10, clock=FakeClock())
    c = client(server, attempts=1, breaker=breaker)
    for mode in ("failing", "normal", "failing", "normal"):
        server.set_mode(mode)
        c.get_json("/leads", {"customer_ids": "C1"})
    assert breaker.state == "closed" and server.hits == 4


def test_half_open_lets_exactly_one_trial_through_across_threads():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.failure()
    clock.now += 5
    start = threading.Barrier(16)
    allowed = []

    def worker():
        start.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False] * 15 + [True]


def test_consecutive_failures_counted_exactly_across_threads():
    breaker = CircuitBreaker(failures=901, cooldown_s=5, clock=FakeClock())
    threads = [threading.Thread(target=lambda: [breaker.failure() for _ in range(100)]) for _ in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"  # exactly the 901st failure opened it


def test_batches_respect_count_and_length():
    assert list(batches([f"C{i}" for i in range(1, 8)], size=3)) == [["C1", "C2", "C3"], ["C4", "C5", "C6"], ["C7"]]
    assert list(batches(["AAAA", "BBBB", "CCCC"], size=10, chars=10)) == [["AAAA", "BBBB"], ["CCCC"]]
    assert list(batches([])) == []
    ids = [f"{i:032d}" for i in range(1200)]
    chunks = list(batches(ids))
    assert [len(c) for c in chunks] == [181] * 6 + [114]  # 6,000 characters / 33 per id
    assert sum(chunks, []) == ids


def test_links_encode_the_id_into_the_templates():
    links = LinkSettings(tag_url="https://t.example/c/{customer_id}?x={y}",
                         lead_url="https://l.example/leads?customer={customer_id}")
    assert customer_links(links, "C 1/&?") == {
        "tags": "https://t.example/c/C%201%2F%26%3F?x={y}",
        "leads": "https://l.example/leads?customer=C%201%2F%26%3F",
    }
    assert cell_links(LinkSettings(), ["C1", "C,2"]) == {
        "tags": "https://tags.example/customers?ids=C1,C%2C2",
        "leads": "https://leads.example/leads?customers=C1,C%2C2",
    }


def test_service_settings_read_from_the_environment():
    env = {"GRIDMKT_LEAD_API": "http://leads.internal/api", "GRIDMKT_LEAD_API_TOKEN": "abc",
           "GRIDMKT_TAG_API_TOKEN": "", "GRIDMKT_SERVICE_ATTEMPTS": "4",
           "GRIDMKT_SERVICE_BREAKER_FAILURES": "7", "GRIDMKT_SERVICE_BREAKER_COOLDOWN_S": "12.5"}
    s = LinkSettings.from_env(env)
    assert (s.lead_api, s.lead_api_token, s.tag_api, s.tag_api_token) == ("http://leads.internal/api", "abc", None, None)
    assert (s.attempts, s.breaker_failures, s.breaker_cooldown_s) == (4, 7, 12.5)
    assert "abc" not in repr(s)


def _fuzz_contract(operation, server, calls: list[int]) -> None:
    key = "ids" if operation.path == "/customers/tags" else "customer_ids"

    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        if len(calls) % 2:  # every other call asks for ids the server knows, so answers are not all empty
            case.query = {**(case.query or {}), key: "C1,C2,C3"}
        response = case.call(base_url=server.url, headers={"Authorization": "Bearer s3cret"})
        calls.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


def test_contract_server_honours_the_documented_contract(server):
    """docs/services-openapi.yaml fuzzed against the contract server: the tests speak the documented contract."""
    schema = schemathesis.openapi.from_dict(yaml.safe_load(CONTRACT.read_text(encoding="utf-8")))
    calls: list[int] = []
    for result in schema.get_all_operations():
        _fuzz_contract(result.ok(), server, calls)
    assert len(calls) >= 20 and 200 in calls
