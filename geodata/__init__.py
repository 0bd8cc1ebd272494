"""gridmkt: geodata package (the database, file formats, and the shipped Ningxia data)."""

from pathlib import Path

#: The real Ningxia data shipped with the project (see its PROVENANCE.md).
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
