"""Domain errors of the grid library; ``api/errors.py`` maps them to HTTP statuses."""

from __future__ import annotations


class GridError(Exception):
    """Base class of every error raised by :mod:`grid`."""


class InvalidInput(GridError, ValueError):
    """An argument is out of range or malformed (bad resolution, non-polygonal county, ...)."""


class VisitError(GridError):
    """Base class of the errors of :mod:`grid.visits` (visit plans and day routes)."""


class VisitInputError(VisitError, InvalidInput):
    """A stop, candidate, task or matrix is malformed; the message names the row and the field."""


class VisitConfigError(VisitError, InvalidInput):
    """A visit-weights table is malformed; the message names the key (``weights.open_lead``)."""
