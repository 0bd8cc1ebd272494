"""gridmkt: api package."""
