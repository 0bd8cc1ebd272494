"""gridmkt: grid package."""
