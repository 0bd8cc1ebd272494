"""gridmkt: maps package."""
