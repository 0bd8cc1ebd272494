"""Batch assignment over many counties on a Dask cluster: the database and file side.

``sources`` reads customers in partitions (store by county, GeoParquet row groups), ``store`` ships
what workers need and writes each county back in its own transaction, ``tasks`` is what workers run.
The orchestration (client, scatter, reduce) is ``api.operations.batch``.
"""
