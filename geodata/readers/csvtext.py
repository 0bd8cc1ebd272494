"""CSV text: which encoding a planner's file is in (UTF-8, UTF-8 with BOM, GBK/GB18030), lines that are in
another one, and a file view that blanks the lines before the header."""

from __future__ import annotations

import io
import re
from pathlib import Path

from geodata.errors import BadInput

_SNIFF_BYTES = 1 << 20
_UTF8 = ("utf-8", "utf-8-sig")


_GB = ("gb18030", "gbk", "gb2312")
_SCAN_BLOCK = 1 << 20
# A line of a GBK file that decodes as UTF-8 *and* then holds a CJK ideograph is UTF-8 text: GBK bytes
# that happen to be valid UTF-8 decode to Latin, Greek or Cyrillic letters, almost never to ideographs.
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _gb_line(line: bytes) -> str | None:
    """The line as GB18030 text if it is not UTF-8 but decodes cleanly as GB18030; else None."""
    try:
        line.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    try:
        return line.decode("gb18030")
    except UnicodeDecodeError:
        return None


def detect_encoding(path: Path) -> str:
    """'utf-8-sig' (with BOM), 'utf-8', or 'gb18030' (superset of GBK) from the file's first MB."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    # A cut multi-byte character at the end of the sample must not count against UTF-8.
    if len(head) == _SNIFF_BYTES and b"\n" in head:
        head = head[: head.rfind(b"\n")]
    try:
        head.decode("utf-8", errors="strict")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Mixed encodings: the file is in the encoding of most of its non-ASCII lines; the lines in the
    # other one are rejected while reading (``mixed_encoding_lines``).
    lines = [ln for ln in head.split(b"\n") if not ln.isascii()]
    utf8 = sum(1 for ln in lines if "\ufffd" not in (t := ln.decode("utf-8", errors="replace")) and _IDEOGRAPH.search(t))
    if utf8 > len(lines) - utf8:
        return "utf-8"
    try:
        head.decode("gb18030", errors="strict")
        return "gb18030"
    except UnicodeDecodeError as exc:
        if utf8 and all(_gb_line(ln) is not None or "\ufffd" not in ln.decode("utf-8", errors="replace")
                        for ln in lines):
            return "gb18030"  # GBK lines and UTF-8 lines (that GB18030 cannot read): mostly GBK
        raise BadInput(
            f"{path.name}: not UTF-8 and not GBK/GB18030 (byte {exc.start}); name its encoding (e.g. gbk)"
        ) from None


def mixed_encoding_lines(path: Path, encoding: str, *, after_line: int = 0) -> list[tuple[int, str, str]]:
    """``(line, text, other encoding)`` of the lines past ``after_line`` written in the other encoding.

    A UTF-8 file's lines that are GBK, or a GBK/GB18030 file's lines that are UTF-8. The file is read in
    blocks of whole lines and each block is decoded at once (C speed); only a UTF-8 file's blocks that do
    not decode are looked at line by line. Bytes valid in neither encoding are left to the reader's error.
    """
    if encoding not in _UTF8 + _GB:
        return []
    found: list[tuple[int, str, str]] = []
    number = 0  # lines before the block
    with open(path, "rb") as fh:
        if encoding == "utf-8-sig":
            fh.read(3)
        while block := fh.read(_SCAN_BLOCK):
            block += fh.readline()  # whole lines only (a GBK character never spans a line break)
            count = block.count(b"\n")
            if not block.endswith(b"\n"):
                count += 1
            if block.isascii():
                pass
            elif encoding in _UTF8:
                try:
                    block.decode("utf-8")
                except UnicodeDecodeError:
                    for i, line in enumerate(block.split(b"\n"), start=number + 1):
                        text = _gb_line(line) if i > after_line else None
                        if text is not None:
                            found.append((i, text.rstrip("\r"), "GBK/GB18030"))
            else:
                # Undecodable UTF-8 becomes U+FFFD: a line without one that holds an ideograph is UTF-8.
                # GBK decoded so holds almost no ideographs, so few lines are looked at.
                text = block.decode("utf-8", errors="replace")
                done, i, counted = -1, number + 1, 0
                for m in _IDEOGRAPH.finditer(text):
                    if m.start() <= done:
                        continue
                    start = text.rfind("\n", 0, m.start()) + 1
                    done = text.find("\n", m.start())
                    done = len(text) if done < 0 else done
                    i += text.count("\n", counted, start)
                    counted = start
                    line = text[start:done]
                    if i > after_line and "\ufffd" not in line:
                        found.append((i, line.rstrip("\r"), "UTF-8"))
            number += count
    return found


class _Blanked(io.RawIOBase):
    """A binary file with some lines (1-based numbers) read as empty lines, so that line numbers hold."""

    def __init__(self, fh, lines: set[int]):
        self._fh, self._lines, self._number, self._buf = fh, lines, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if not self._buf:
            block = self._fh.read(_SCAN_BLOCK)
            if block:
                block += self._fh.readline()
                parts = block.split(b"\n")
                first = self._number + 1
                count = block.count(b"\n")
                if any(first <= n <= first + count for n in self._lines):
                    parts = [b"" if n in self._lines else part for n, part in enumerate(parts, start=first)]
                self._number += count
                self._buf = b"\n".join(parts)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


