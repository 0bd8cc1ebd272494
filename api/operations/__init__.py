"""Operations: each change is one function under both faces (the routes and the ``gridmkt`` command line).

An operation does the work, its follow-ups (rescoring after a publish) and its
audit row, in the caller's transaction. The ``actor`` is the signed-in user for
the API, the ``--user`` given or the operating-system user for the command
line. ``scope`` is the signed-in user's scope (objects outside it are "not
found"); the command line passes None: whoever reaches the database may change
anything. Faces parse input and format output around these functions, nothing more.
"""

from api.operations import grids, scenarios, territories

__all__ = ["grids", "scenarios", "territories"]
