"""Domain errors of the grid library; ``api/errors.py`` maps them to HTTP statuses."""

from __future__ import annotations


class GridError(Exception):
    """Base class of every error raised by :mod:`grid`."""


class InvalidInput(GridError, ValueError):
    """An argument is out of range or malformed (bad resolution, non-polygonal county, ...)."""
