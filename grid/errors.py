"""Every domain error of the grid library, in one hierarchy; ``api/errors.py`` maps them to HTTP statuses.

::

    GridError                      400 unless a subclass says otherwise
    ├── InvalidInput (ValueError)  422: an argument, table or configuration is malformed
    │   ├── GapConfigError         a gap weights table; the message names the key
    │   ├── GapInputError          the gap measures table
    │   └── SiteInputError         site-selection coordinates, weights, k, radius, options
    ├── SiteSolverError            500: the requested solver is not installed here (RuntimeError)
    └── VisitError                 visit plans and day routes
        ├── VisitInputError (InvalidInput)
        └── VisitConfigError (InvalidInput)

Input errors stay ``ValueError`` subclasses, so callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class GridError(Exception):
    """Base class of every error raised by :mod:`grid`."""


class InvalidInput(GridError, ValueError):
    """An argument is out of range or malformed (bad resolution, non-polygonal county, ...)."""


class GapConfigError(InvalidInput):
    """A gap weights/thresholds table is malformed; the message names the bad key (``weights.no_owner``)."""


class GapInputError(InvalidInput):
    """The gap measures table is missing columns or has duplicate cells."""


class SiteInputError(InvalidInput):
    """Site-selection coordinates, weights, k, radius or solver options are malformed."""


class SiteSolverError(GridError, RuntimeError):
    """The requested site-selection solver is not available in this environment."""


class VisitError(GridError):
    """Base class of the errors of :mod:`grid.visits` (visit plans and day routes)."""


class VisitInputError(VisitError, InvalidInput):
    """A stop, candidate, task or matrix is malformed; the message names the row and the field."""


class VisitConfigError(VisitError, InvalidInput):
    """A visit-weights table is malformed; the message names the key (``weights.open_lead``)."""
