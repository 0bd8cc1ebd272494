"""Domain errors raised by the store and the importers; ``api/errors.py`` maps them to HTTP."""


class GeodataError(Exception):
    """Base class of every error this package raises on purpose."""


class DatabaseUnavailable(GeodataError):
    """No database can be reached or started (e.g. PostGIS missing)."""


class Busy(GeodataError):
    """The same thing is being done by another request right now (e.g. a retry racing its original): retry."""


class NotFound(GeodataError):
    """A named object (grid, scenario, RM, ...) does not exist or is out of scope."""


class Forbidden(GeodataError):
    """The user may not do this at all (e.g. change rows shared by every legal entity)."""


class Conflict(GeodataError):
    """The request contradicts stored state (stale scenario, duplicate name, ...)."""


class BadInput(GeodataError, ValueError):
    """A file or argument cannot be used; the message names the row/field and the reason."""
