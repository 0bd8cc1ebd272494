"""The ``gridmkt`` command line: a thin face over the same functions the API uses."""

from __future__ import annotations

import click

from api.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gridmkt")
def cli() -> None:
    """gridmkt: GIS grid marketing (网格化营销) for rural commercial banks.

    With GRIDMKT_DATABASE_URL unset, commands use an embedded PostGIS cluster
    under $GRIDMKT_HOME (default ./.gridmkt), starting it when needed.
    Every command takes --json and then prints one JSON object.
    """


def settings() -> Settings:
    """Settings of this process (read from the environment when first asked)."""
    return Settings.from_env()


def _register() -> None:
    # Each module adds its commands to ``cli`` when imported.
    import importlib
    import pkgutil

    import api.cli as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "output":
            importlib.import_module(f"api.cli.{mod.name}")


def main() -> None:
    """Entry point of the ``gridmkt`` console script."""
    _register()
    cli()
