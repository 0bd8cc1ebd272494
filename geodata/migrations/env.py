"""Alembic environment: runs on the connection handed over by ``geodata.migrate``."""

from alembic import context
from geoalchemy2 import alembic_helpers

import geodata.visit_tables  # noqa: F401  (registers the visit plan tables on metadata)
from geodata.tables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=alembic_helpers.include_object,
    process_revision_directives=alembic_helpers.writer,
    render_item=alembic_helpers.render_item,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
