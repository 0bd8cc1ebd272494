"""Uploads: streamed with a size limit, safe names, type sniffing, zip bombs; run as polled jobs."""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import time
import zipfile
from pathlib import Path

from sqlalchemy import text


def _post(client, headers, name, content, kind="customers", **params):
    return client.post(f"/api/v1/imports/{kind}", params=params, headers=headers,
                       files={"file": (name, content, "application/octet-stream")})


def _poll(client, headers, url, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(url, headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job did not finish: {job}")


SEEN: list[dict] = []  # what the fake importer found on disk while the job ran


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _fake_importer(engine, *, kind, path, user, crs, encoding, mapping, rejects_dir, dry_run, legal_entity_id,
                   synthetic, progress):
    """Stands in for geodata.importers.run_import: counts rows and writes an import_run."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    SEEN.append({"path": Path(path), "file_mode": _mode(path), "folder_mode": _mode(Path(path).parent)})
    progress(0.5, "reading")
    with engine.begin() as c:
        run_id = c.execute(text(
            "INSERT INTO import_run (kind, file_name, sha256, user_name, status, counts)"
            " VALUES (:k, :f, repeat('1', 64), :u, 'ok', jsonb_build_object('read', CAST(:n AS int)))"
            " RETURNING id"), {"k": kind, "f": Path(path).name, "u": user, "n": len(lines) - 1}).scalar_one()
    if "fail" in lines[0]:
        raise ValueError("column 'customer_id' is missing")
    return {"import_run_id": run_id, "read": len(lines) - 1, "crs": crs, "dry_run": dry_run}


def test_upload_runs_as_a_job_and_lands_in_the_upload_folder(app, client, auth, settings):
    app.state.importer = _fake_importer
    h = auth("planner_a")
    r = _post(client, h, "../../etc/passwd.csv", "customer_id,name\nC9,赵六\nC10,钱七\n", crs="gcj02")
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["file_name"] == "passwd.csv" and started["format"] == "csv"
    job = _poll(client, h, started["poll"])
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["result"]["read"] == 2 and job["result"]["crs"] == "gcj02"
    seen = SEEN[-1]
    assert seen["path"].name == "passwd.csv" and seen["path"].parent.parent == Path(settings.uploads.dir)
    assert not Path("/etc/passwd.csv").exists()
    # Unmasked personal data: readable by the service's user only while it exists, and gone after the job.
    assert seen["file_mode"] == 0o600 and seen["folder_mode"] == 0o700
    assert _mode(settings.uploads.dir) == 0o700
    assert not seen["path"].exists() and not seen["path"].parent.exists()
    runs = client.get("/api/v1/imports", headers=h).json()["items"]
    assert runs[0]["id"] == job["result"]["import_run_id"] and runs[0]["user_name"] == "planner_a"
    # Another legal entity's planner sees neither the job nor the run.
    assert client.get(started["poll"], headers=auth("planner_b")).status_code == 404
    assert client.get(f"/api/v1/imports/{runs[0]['id']}", headers=auth("planner_b")).status_code == 404


def test_failed_import_job_says_why(app, client, auth):
    app.state.importer = _fake_importer
    h = auth("planner_a")
    r = _post(client, h, "c.csv", "fail,name\n1,2\n")
    job = _poll(client, h, r.json()["poll"])
    assert job["status"] == "failed" and "customer_id" in job["message"]
    assert not SEEN[-1]["path"].parent.exists()  # a failed job's upload is deleted too


def test_refused_uploads_leave_nothing_and_kept_ones_stay_private(app, client, auth, settings):
    """Uploads used to stay for ever (756 MB after one test session), 0644 in 0755 folders."""
    app.state.importer = _fake_importer
    h = auth("planner_a")
    folder = Path(settings.uploads.dir)
    before = {p for p in folder.iterdir() if p.name != "rejects"}
    assert _post(client, h, "x.csv", b"\x1f\x8b\x08\x00" + b"\x00" * 50).status_code == 415
    assert {p for p in folder.iterdir() if p.name != "rejects"} == before
    original = app.state.settings
    app.state.settings = dataclasses.replace(original, uploads=dataclasses.replace(original.uploads, keep=True))
    try:
        r = _post(client, h, "kept.csv", "customer_id,name\nC9,赵六\n")
        assert _poll(client, h, r.json()["poll"])["status"] == "done"
    finally:
        app.state.settings = original
    kept = SEEN[-1]["path"]
    assert kept.exists() and _mode(kept) == 0o600 and _mode(kept.parent) == 0o700


def test_upload_settings_default_to_512_mib_and_not_kept(tmp_path):
    from api.settings import UploadSettings

    d = UploadSettings.from_env({}, tmp_path)
    assert d.max_bytes == 512 * 1024**2 and d.keep is False and d.dir == tmp_path / "uploads"
    assert UploadSettings.from_env({"GRIDMKT_UPLOAD_KEEP": "true"}, tmp_path).keep is True
    assert UploadSettings.from_env({"GRIDMKT_UPLOAD_MAX_BYTES": "1000"}, tmp_path).max_bytes == 1000


def test_too_large_upload_is_413_and_leaves_nothing(app, client, auth, settings):
    app.state.importer = _fake_importer
    before = set(Path(settings.uploads.dir).rglob("*"))
    big = b"a,b\n" + b"1,2\n" * (settings.uploads.max_bytes // 4 + 10)
    r = _post(client, auth("planner_a"), "big.csv", big)
    assert r.status_code == 413
    assert set(Path(settings.uploads.dir).rglob("*")) == before


def test_wrong_types_are_415(app, client, auth):
    app.state.importer = _fake_importer
    h = auth("planner_a")
    gz = b"\x1f\x8b\x08\x00" + b"\x00" * 50
    sqlite = b"SQLite format 3\x00" + b"\x00" * 100
    for name, content in (("passwd", b"root:x:0:0"), ("x.exe", b"MZ\x90"), ("x.csv", gz),
                          ("x.csv", sqlite), ("x.geojson", b"not json"), ("x.gpkg", b"a,b\n1,2"),
                          ("x.xlsx", b"a,b\n"), ("x.zip", _zip({"readme.txt": b"hi"}))):
        r = _post(client, h, name, content)
        assert r.status_code == 415, (name, r.status_code, r.text)
    r = client.post("/api/v1/imports/customers", headers=h, content=b"a,b\n1,2\n")
    assert r.status_code == 415
    assert _post(client, h, "x.gpkg", sqlite).status_code == 202


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_bombs_and_escaping_members_are_refused(app, client, auth, settings):
    app.state.importer = _fake_importer
    h = auth("planner_a")
    bomb = _zip({"a.shp": b"\x00" * (settings.uploads.max_bytes * 5), "a.dbf": b"x"})
    assert len(bomb) < settings.uploads.max_bytes
    assert _post(client, h, "bomb.zip", bomb).status_code == 413
    escape = _zip({"../../a.shp": b"x", "a.dbf": b"x"})
    assert _post(client, h, "esc.zip", escape).status_code == 415
    ok = _zip({"a.shp": b"shp", "a.dbf": b"dbf", "a.shx": b"shx"})
    assert _post(client, auth("admin"), "parcels.zip", ok, kind="villages").status_code == 202


def test_only_importers_upload_and_read_rejects(app, client, auth, data, settings):
    app.state.importer = _fake_importer
    for who in ("rm_a1", "bm_a", "analyst_a"):
        assert _post(client, auth(who), "c.csv", "customer_id\nC1\n").status_code == 403
    run = data["run_planner_a"]
    r = client.get(f"/api/v1/imports/{run}/rejects", headers=auth("planner_a"))
    assert r.status_code == 200 and r.text == "row,reason\n3,bad code\n"
    assert r.headers["content-type"].startswith("text/csv")
    assert client.get(f"/api/v1/imports/{run}/rejects", headers=auth("analyst_a")).status_code == 403
    assert client.get(f"/api/v1/imports/{data['run_planner_b']}/rejects",
                      headers=auth("planner_a")).status_code == 404


def test_bad_parameters_name_themselves(app, client, auth):
    h = auth("planner_a")
    r = _post(client, h, "c.csv", "a\n1\n", kind="wizards")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "kind"]
    r = _post(client, h, "c.csv", "a\n1\n", crs="mars")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "crs"]
    r = _post(client, h, "c.csv", "a\n1\n", mapping="[1]")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "mapping"]


def test_real_importer_end_to_end(app, client, auth, engine):
    """The real geodata.importers.run_import behind the upload route: summary and rejects."""
    app.state.importer = None
    h = auth("admin")  # villages are shared by every legal entity
    csv = ("code,name,county_code,households,lon,lat,coord_level\n"
           "640104001901,新村,640104,120,106.3,38.47,village\n"
           "6401X,坏村,640104,5,106.3,38.47,village\n")
    r = _post(client, h, "村庄.csv", csv.encode("utf-8"), kind="villages")
    assert r.status_code == 202, r.text
    job = _poll(client, h, r.json()["poll"], timeout=60)
    assert job["status"] == "done", job
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM village WHERE code = '640104001901'")).scalar() == "新村"
    runs = client.get("/api/v1/imports", headers=h).json()["items"]
    run = next(x for x in runs if x["kind"] == "villages")
    assert run["status"] == "ok" and run["rejects"] == f"/api/v1/imports/{run['id']}/rejects"
    rejects = client.get(run["rejects"], headers=h)
    assert rejects.status_code == 200 and "6401X" in rejects.text
    with engine.connect() as c:
        path = Path(c.execute(text("SELECT rejects_path FROM import_run WHERE id = :i"), {"i": run["id"]}).scalar())
    assert _mode(path) == 0o600  # rejected rows are personal data too


def test_geoparquet_upload_goes_through_the_same_importer(app, client, auth, engine):
    """A .parquet upload is sniffed (PAR1 at both ends) and imported by the real importer, rejects and all."""
    import geopandas as gpd
    import shapely

    app.state.importer = None
    h = auth("admin")
    assert _post(client, h, "x.parquet", b"a,b\n1,2\n").status_code == 415
    buf = io.BytesIO()
    gpd.GeoDataFrame({"customer_id": ["GP1", "GP2"], "deposit_balance": [10.0, -1.0]},
                     geometry=[shapely.Point(106.3, 38.47), shapely.Point(106.3, 38.4)], crs=4326).to_parquet(buf)
    r = _post(client, h, "客户.parquet", buf.getvalue())
    assert r.status_code == 202, r.text
    job = _poll(client, h, r.json()["poll"], timeout=60)
    assert job["status"] == "done", job
    with engine.connect() as c:
        assert c.execute(text("SELECT ST_X(geom) FROM customer WHERE customer_id = 'GP1'")).scalar() == 106.3
        assert c.execute(text("SELECT count(*) FROM customer WHERE customer_id = 'GP2'")).scalar() == 0
    run = next(x for x in client.get("/api/v1/imports", headers=h).json()["items"] if x["kind"] == "customers")
    rejects = client.get(run["rejects"], headers=h).text
    assert "deposit_balance" in rejects and "\n2," in rejects.replace("\r\n", "\n")
