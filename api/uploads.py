"""Uploads streamed to disk in chunks, with a size limit, safe file names and content sniffing.

Starlette's own form parsing spools a whole upload before the route sees it,
so the limit could only be checked afterwards; here the multipart body is
parsed as it arrives and refused (413) as soon as it grows past the limit.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from fastapi import HTTPException, Request, status
from python_multipart.multipart import MultipartParser, parse_options_header

# Extension -> the format it must sniff as.
FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".geojson": "geojson", ".json": "geojson",
           ".gpkg": "gpkg", ".zip": "shapefile_zip", ".parquet": "parquet"}
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_BINARY_MAGIC = (b"PK\x03\x04", b"SQLite format 3\x00", b"%PDF", b"\x7fELF", b"MZ", b"\x1f\x8b",
                 b"\xd0\xcf\x11\xe0")
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_RATIO = 200  # shapefiles and xlsx compress 2-20x; bombs compress thousands of times


def _refuse(code: int, detail: str) -> HTTPException:
    return HTTPException(code, detail)


def safe_name(client_name: str | None) -> str:
    """A harmless file name from whatever the client sent: no folders, no odd characters."""
    name = PurePosixPath((client_name or "").replace("\\", "/")).name
    name = _UNSAFE.sub("_", name).lstrip(".")[-120:]
    return name or "upload"


def format_of(name: str) -> str:
    """The format an upload claims by its extension; 415 for anything not importable."""
    ext = Path(name).suffix.lower()
    if ext not in FORMATS:
        raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                      f"file type {ext or '(none)'!r} is not accepted: use CSV, XLSX, GeoParquet, GeoJSON, GeoPackage or a zipped shapefile")
    return FORMATS[ext]


async def receive_file(request: Request, *, folder: Path, max_bytes: int, field: str = "file") -> Path:
    """Stream the multipart part ``field`` into a fresh sub-folder of ``folder``; return its path."""
    ctype, opts = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data" or b"boundary" not in opts:
        raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the file as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 65536:
        raise _refuse(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {max_bytes} bytes")
    target = folder / uuid.uuid4().hex
    _private_folder(folder)
    target.mkdir(mode=0o700, exist_ok=False)
    st = {"headers": {}, "field": b"", "value": b"", "out": None, "path": None, "size": 0, "seen": 0}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        st["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        st["value"] += data[start:end]

    def on_header_end() -> None:
        st["headers"][st["field"].lower()] = st["value"]
        st["field"], st["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(st["headers"].get(b"content-disposition", b""))
        st["headers"] = {}
        if disp.get(b"name") == field.encode() and b"filename" in disp and st["path"] is None:
            client = disp[b"filename"].decode("utf-8", "replace")
            st["path"] = target / safe_name(client)
            format_of(st["path"].name)
            fd = os.open(st["path"], os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            st["out"] = open(fd, "wb")  # noqa: SIM115 (closed in on_part_end/finally)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if st["out"] is not None:
            st["size"] += end - start
            if st["size"] > max_bytes:
                raise _refuse(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {max_bytes} bytes")
            st["out"].write(data[start:end])

    def on_part_end() -> None:
        if st["out"] is not None:
            st["out"].close()
            st["out"] = None

    parser = MultipartParser(opts[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        async for chunk in request.stream():
            st["seen"] += len(chunk)
            if st["seen"] > max_bytes + 65536:  # other parts count too
                raise _refuse(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {max_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except HTTPException:
        _discard(target, st)
        raise
    except Exception as exc:  # malformed multipart
        _discard(target, st)
        raise _refuse(status.HTTP_400_BAD_REQUEST, f"malformed multipart body: {exc}") from None
    if st["out"] is not None:
        st["out"].close()
    if st["path"] is None:
        _discard(target, st)
        raise _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no file in form field {field!r}")
    return st["path"]


def _private_folder(folder: Path) -> None:
    """Create the upload folder for this user only (0700); an existing one of ours is narrowed to 0700.

    A shared folder (sticky bit, as /tmp) or one of another user is left as it is: each upload's own
    sub-folder is 0700 anyway.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX and stat.S_IMODE(st.st_mode) != 0o700:
        folder.chmod(0o700)


def discard_upload(path: Path, *, folder: Path) -> None:
    """Delete an upload and its own sub-folder (made by ``receive_file`` under ``folder``)."""
    sub = Path(path).parent
    if sub.parent.resolve() == Path(folder).resolve() and len(sub.name) == 32:
        shutil.rmtree(sub, ignore_errors=True)
    else:  # never a folder this module did not make
        Path(path).unlink(missing_ok=True)


def _discard(target: Path, st: dict) -> None:
    if st["out"] is not None:
        st["out"].close()
    for p in target.glob("*"):
        p.unlink(missing_ok=True)
    target.rmdir()


def _check_zip(path: Path, *, max_bytes: int, need: tuple[str, ...], what: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"zip has {len(infos)} members")
            names = [i.filename for i in infos]
            if any(n.startswith("/") or ".." in PurePosixPath(n).parts for n in names):
                raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "zip member paths leave the archive")
            declared = sum(i.file_size for i in infos)
            packed = sum(i.compress_size for i in infos)
            if declared > max_bytes or declared > MAX_ZIP_RATIO * max(packed, 1):
                raise _refuse(status.HTTP_413_CONTENT_TOO_LARGE, "zip expands too much (zip bomb?)")
            lower = [n.lower() for n in names]
            for suffix in need:
                if not any(n.endswith(suffix) for n in lower):
                    raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"not {what}: no {suffix} inside")
            # Headers can lie: decompress for real, stopping at the limit.
            total = 0
            for info in infos:
                with zf.open(info) as member:
                    while chunk := member.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise _refuse(status.HTTP_413_CONTENT_TOO_LARGE, "zip expands too much (zip bomb?)")
    except zipfile.BadZipFile:
        raise _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"not {what}: broken zip") from None


def sniff(path: Path, *, max_bytes: int) -> str:
    """Check that the content matches the extension; 415 (or 413 for zip bombs) when it does not."""
    fmt = format_of(path.name)
    with open(path, "rb") as f:
        head = f.read(65536)
    bad = _refuse(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"content of {path.name!r} is not {fmt}")
    if fmt == "csv":
        if not head or b"\x00" in head or head.startswith(_BINARY_MAGIC):
            raise bad
    elif fmt == "geojson":
        if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            raise bad
    elif fmt == "gpkg":
        if not head.startswith(b"SQLite format 3\x00"):
            raise bad
    elif fmt == "parquet":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4))
            tail = f.read(4)
        if not head.startswith(b"PAR1") or tail != b"PAR1":
            raise bad
    elif fmt == "xlsx":
        if not head.startswith(b"PK\x03\x04"):
            raise bad
        _check_zip(path, max_bytes=max_bytes, need=("[content_types].xml", ".xml"), what="an Excel workbook")
    elif fmt == "shapefile_zip":
        if not head.startswith(b"PK\x03\x04"):
            raise bad
        _check_zip(path, max_bytes=max_bytes, need=(".shp", ".dbf"), what="a zipped shapefile")
    return fmt
