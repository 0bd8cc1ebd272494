"""Opening a planner's table: :class:`TableSource` yields chunks of strings (``''`` for empty cells)
under the file's own column names plus ``_line``, the 1-based line a planner sees in Excel or a text
editor, over CSV (``csvtext``) or XLSX (``xlsx``); headers and field mapping from ``headers``."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geodata.errors import BadInput
from geodata.readers.csvtext import _Blanked, detect_encoding, mixed_encoding_lines
from geodata.readers.headers import (
    HEADER_SCAN_ROWS,
    LINE,
    _map_columns,
    _unique,
    aliases,
    find_header,
)
from geodata.readers.parquet import PARQUET_SUFFIXES, ParquetSource, open_parquet
from geodata.readers.xlsx import _cell_text, _drop_blank, _open_sheet, _xlsx_frame


@dataclass
class TableSource:
    """An opened table: where its header is, its columns, and which field each column holds."""

    path: Path
    format: str
    encoding: str | None
    header_line: int
    columns: list[str]
    mapping: dict[str, str]  # field -> column
    ignored: list[str] = field(default_factory=list)
    sheet: str | None = None
    size_bytes: int = 0
    #: (line, text, reason) of rows that could not be split into the header's columns
    invalid_rows: list = field(default_factory=list)
    #: lines written in another encoding than the file's (rejected, listed in ``invalid_rows`` too)
    mixed_lines: list = field(default_factory=list)
    _pos: int = 0

    def chunks(self, chunk_size: int = 200_000) -> Iterator[pd.DataFrame]:
        """DataFrames of strings under the original column names, plus ``_line``."""
        if self.format == "xlsx":
            yield from self._xlsx_chunks(chunk_size)
        else:
            yield from self._csv_chunks(chunk_size)

    def fraction_read(self) -> float:
        """Rough fraction of the file read so far (for progress bars)."""
        return min(1.0, self._pos / self.size_bytes) if self.size_bytes else 0.0

    # -- CSV -------------------------------------------------------------------
    def _csv_chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        bad: set[int] = set()
        ncol = len(self.columns)

        def on_invalid(row) -> str:
            # Ragged rows become rejects, not a fatal error; single-threaded pyarrow gives the line.
            bad.add(row.number)
            if row.number not in blanked:  # a line of another encoding, read as empty: already rejected
                reason = f"{row.actual_columns} cells where the header has {ncol}"
                self.invalid_rows.append((row.number, row.text, reason))
            return "skip"

        # Lines in the other encoding (a GBK file with UTF-8 lines, or the reverse) would be read as
        # mojibake (赵六 as 璧靛叚) or stop the import: each is rejected, named, and read as an empty line.
        self.mixed_lines = mixed_encoding_lines(self.path, self.encoding or "utf-8", after_line=self.header_line)
        blanked = {line for line, _, _ in self.mixed_lines}
        self.invalid_rows = [
            (line, text, f"this line is {other} but the file is {self.encoding} (mixed encodings): save the"
                         " whole file in one encoding and import this row again")
            for line, text, other in self.mixed_lines]
        try:
            yield from self._csv_batches(chunk_size, bad, on_invalid)
        except UnicodeDecodeError:  # a non-UTF-8 file, transcoded by Python's codec
            raise self._undecodable() from None
        except pa.ArrowInvalid as exc:  # UTF-8, checked by Arrow itself
            if "straddl" in str(exc):  # a row longer than one block: Arrow cannot split it
                raise self._too_long(self._block_size(chunk_size)) from None
            if "invalid UTF8" not in str(exc):
                raise
            raise self._undecodable() from None

    @staticmethod
    def _block_size(chunk_size: int) -> int:
        """Bytes Arrow reads at a time; also the longest row it can read."""
        return max(1 << 20, chunk_size * 64)

    def _too_long(self, limit: int) -> BadInput:
        """The error for a row longer than the reader's limit, naming its line (error path only)."""
        number, length, longest = 1, 0, (0, 0)
        with open(self.path, "rb") as fh:
            # In blocks: the line itself may be hundreds of megabytes.
            while block := fh.read(1 << 20):
                parts = block.split(b"\n")
                for i, part in enumerate(parts):
                    length += len(part)
                    if i < len(parts) - 1:
                        if length > longest[1]:
                            longest = (number, length)
                        if length > limit:
                            break
                        number, length = number + 1, 0
                else:
                    continue
                break
        if length > longest[1]:
            longest = (number, length)
        line, size = longest
        return BadInput(
            f"{self.path.name}, line {line}: a row of {size:,} bytes, longer than the reader's limit of {limit:,}"
            " bytes per row (a missing line break, or an unclosed quote?); nothing was stored.")

    def _undecodable(self) -> BadInput:
        """The error for bytes the file's encoding cannot read, naming the first such line (error path only)."""
        dec = codecs.getincrementaldecoder(self.encoding or "utf-8")()
        with open(self.path, "rb") as fh:
            # GBK/GB18030 second bytes are never 0x0A, so a multibyte character never spans lines.
            for number, line in enumerate(fh, start=1):
                try:
                    dec.decode(line)
                except UnicodeDecodeError as exc:
                    bad = line[exc.start:exc.end + 1].hex(" ")
                    return BadInput(
                        f"{self.path.name}, line {number}: bytes {bad} are not valid {self.encoding}; nothing was"
                        " stored. Correct or remove that line, or name the file's encoding if it is in another one.")
        return BadInput(f"{self.path.name}: not valid {self.encoding}; nothing was stored")

    def _csv_batches(self, chunk_size: int, bad: set[int], on_invalid) -> Iterator[pd.DataFrame]:
        enc = "utf8" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding
        raw = open(self.path, "rb")
        # Progress counts lines, at the first megabyte's bytes per line: pyarrow reads blocks ahead, so
        # the file position would run ahead of the rows handed out.
        sample = raw.read(1 << 20)
        raw.seek(0)
        per_line = len(sample) / max(1, sample.count(b"\n"))
        if self.mixed_lines:
            raw = _Blanked(raw, {line for line, _, _ in self.mixed_lines})
        reader = pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(
                skip_rows=self.header_line, column_names=self.columns, encoding=enc,
                use_threads=False, block_size=self._block_size(chunk_size),
            ),
            parse_options=pacsv.ParseOptions(
                ignore_empty_lines=False, newlines_in_values=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in self.columns},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
        try:
            next_line = self.header_line + 1
            pending: list[pd.DataFrame] = []
            pending_rows = 0
            for batch in reader:
                frame = batch.to_pandas()
                n = len(frame)
                # Line numbers skip the physical lines pyarrow rejected as ragged.
                span = np.arange(next_line, next_line + n + len(bad), dtype=np.int64)
                if bad:
                    span = span[~np.isin(span, np.fromiter(bad, dtype=np.int64))]
                frame[LINE] = span[:n]
                next_line = int(span[n - 1]) + 1 if n else next_line
                pending.append(frame)
                pending_rows += n
                if pending_rows >= chunk_size:
                    for out in self._emit(pending, chunk_size):
                        # Up to the last line handed out.
                        if len(out):
                            self._pos = min(self.size_bytes, int(int(out[LINE].iloc[-1]) * per_line))
                        yield out
                    pending = [p for p in pending if len(p)]
                    pending_rows = sum(len(p) for p in pending)
        finally:
            raw.close()
        self._pos = self.size_bytes
        if pending_rows:
            out = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            yield _drop_blank(out)

    @staticmethod
    def _emit(pending: list[pd.DataFrame], chunk_size: int) -> Iterator[pd.DataFrame]:
        whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        pending.clear()
        start = 0
        while len(whole) - start >= chunk_size:
            yield _drop_blank(whole.iloc[start : start + chunk_size].reset_index(drop=True))
            start += chunk_size
        pending.append(whole.iloc[start:].reset_index(drop=True))

    # -- XLSX ------------------------------------------------------------------
    def _xlsx_chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        wb, ws = _open_sheet(self.path, self.sheet)
        try:
            rows, lines = [], []
            ncol = len(self.columns)
            total = ws.max_row or 0  # from the sheet's dimension record, when the writer set one
            for i, row in enumerate(ws.iter_rows(min_row=self.header_line + 1, values_only=True)):
                cells = [_cell_text(v) for v in row[:ncol]]
                cells += [""] * (ncol - len(cells))
                rows.append(cells)
                lines.append(self.header_line + 1 + i)
                if len(rows) >= chunk_size:
                    done = (self.header_line + 1 + i) / total if total > self.header_line + i else 0.5
                    self._pos = int(self.size_bytes * min(done, 1.0))
                    yield _xlsx_frame(rows, lines, self.columns)
                    rows, lines = [], []
            if rows:
                yield _xlsx_frame(rows, lines, self.columns)
        finally:
            wb.close()



def _head_rows(path: Path, fmt: str, encoding: str | None, sheet: str | None) -> list[list[str]]:
    """The first rows of the file as text cells, for finding the header."""
    if fmt == "xlsx":
        wb, ws = _open_sheet(path, sheet)
        try:
            return [
                [_cell_text(v) for v in row]
                for row in ws.iter_rows(max_row=HEADER_SCAN_ROWS, values_only=True)
            ]
        finally:
            wb.close()
    with open(path, "rb") as f:
        raw = f.read(256 * 1024)
    try:
        text = raw.decode(encoding or "utf-8", errors="strict" if len(raw) < 256 * 1024 else "ignore")
    except (UnicodeDecodeError, LookupError) as exc:
        raise BadInput(f"{path.name}: cannot be decoded as {encoding} ({exc})") from None
    lines = text.splitlines()[:HEADER_SCAN_ROWS]
    reader = csv.reader(io.StringIO("\n".join(lines)))
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append([c.strip() for c in row])
    except csv.Error as exc:
        # Python's csv module refuses a field past its limit (131,072 characters) with a bare
        # ``Error``: a header row is never that long, so stop at the rows before it, or say so.
        if not rows:
            raise BadInput(f"{path.name}, line {reader.line_num}: a field longer than {csv.field_size_limit():,}"
                           f" characters where the header should be ({exc}); is a line break missing?"
                           " Nothing was stored.") from None
    return rows


def open_table(
    path: str | Path,
    *,
    kind: str,
    fields: tuple[str, ...],
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> TableSource | ParquetSource:
    """Open a CSV/XLSX/(Geo)Parquet file, find its header row and map its columns to ``fields``.

    ``mapping`` is ``{source column: field}`` (from ``--map 源列=field``) and
    wins over the alias table. Raises BadInput when the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return open_parquet(path, kind=kind, fields=tuple(fields), mapping=mapping)
    if suffix in (".xlsx", ".xlsm"):
        fmt, encoding = "xlsx", None
    elif suffix in (".csv", ".txt", ".tsv", ""):
        fmt = "csv"
        if encoding:
            try:
                encoding = codecs.lookup(encoding).name
            except LookupError:
                raise BadInput(f"unknown encoding {encoding!r}") from None
        else:
            encoding = detect_encoding(path)
    elif suffix == ".xls":
        raise BadInput(f"{path.name}: old .xls workbooks are not read; save it as .xlsx or CSV")
    else:
        raise BadInput(f"{path.name}: unsupported file type {suffix!r} (CSV, XLSX or GeoParquet)")
    if fmt == "csv" and encoding in ("utf_8", "utf-8"):
        encoding = "utf-8-sig" if open(path, "rb").read(3) == b"\xef\xbb\xbf" else "utf-8"
    alias_map = aliases(kind, tuple(fields))
    head = _head_rows(path, fmt, encoding, sheet)
    if not head or not any(any(c for c in r) for r in head):
        raise BadInput(f"{path.name}: the file is empty")
    h = find_header(head, alias_map)
    columns = _unique(head[h])
    col_to_field = _map_columns(columns, alias_map, fields, mapping or {}, path.name)
    field_to_col = {f: c for c, f in col_to_field.items()}
    ignored = [c for c in columns if c not in col_to_field]
    return TableSource(
        path=path, format=fmt, encoding=encoding, header_line=h + 1, columns=columns,
        mapping=field_to_col, ignored=ignored, sheet=sheet, size_bytes=path.stat().st_size,
    )


