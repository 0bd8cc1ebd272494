"""Reading planners' tables: CSV (UTF-8, UTF-8 with BOM, GBK/GB18030) or XLSX, header row found under titles.

A :class:`TableSource` yields chunks of strings (``''`` for empty cells) under
the file's own column names plus ``_line``, the 1-based line a planner sees in
Excel or a text editor. Which column means which canonical field is decided
here too, through ``geodata/aliases.toml`` or an explicit mapping.

One module per part: ``headers`` (names, aliases, the header row, the field mapping), ``csvtext``
(encodings of CSV text), ``xlsx`` (workbooks) and ``source`` (:class:`TableSource`, :func:`open_table`).
"""

from geodata.readers.csvtext import detect_encoding, mixed_encoding_lines
from geodata.readers.headers import (
           LINE,
           _map_columns,
           aliases,
           find_header,
           match_field,
           normalise_header,
)
from geodata.readers.source import TableSource, open_table

__all__ = ["LINE", "TableSource", "_map_columns", "aliases", "detect_encoding", "find_header", "match_field",
           "mixed_encoding_lines", "normalise_header", "open_table"]
