"""/docs and /redoc load Swagger UI and ReDoc from this server, never from a CDN (they were blank offline)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import AuthSettings, DatabaseSettings, Settings

_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']""")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("docs")
    # No lifespan (no `with`): the documentation pages need no database.
    return TestClient(create_app(Settings(db=DatabaseSettings(url="postgresql+psycopg2://x@127.0.0.1:1/x", home=home),
                                          auth=AuthSettings(secret_key="k" * 32))))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_reference_only_local_assets_and_they_are_served(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = [next(g for g in m.groups() if g) for m in _REF.finditer(page.text)]
    assets = [r for r in refs if r.endswith((".js", ".css", ".png"))]
    assert assets, page.text  # the page does load a script
    assert not re.search(r"https?://", page.text.replace("http://www.w3.org", "")), "an absolute URL in " + path
    for ref in refs:
        assert ref.startswith("/"), ref
        r = client.get(ref)
        assert r.status_code == 200, ref
        if ref.endswith(".js"):
            assert len(r.content) > 100_000  # the real bundle, not a stub
    assert client.get("/openapi.json").status_code == 200


def test_swagger_oauth2_redirect_is_served(client):
    assert client.get("/docs/oauth2-redirect").status_code == 200
