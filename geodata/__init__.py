"""gridmkt: geodata package."""
