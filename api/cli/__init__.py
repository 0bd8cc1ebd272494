"""The ``gridmkt`` command line: a thin face over the same functions the API uses."""

from __future__ import annotations

import getpass
import sys

import click

from api.settings import Settings


class JsonGroup(click.Group):
    """Usage errors (bad option, unknown choice) as one JSON object on stdout when ``--json`` is on the line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        from api.cli.output import dumps

        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(dumps({"ok": False, "error": exc.format_message(), "type": type(exc).__name__}))
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(dumps({"ok": False, "error": "aborted", "type": "Abort"}))
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=JsonGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gridmkt")
def cli() -> None:
    """gridmkt: GIS grid marketing (网格化营销) for rural commercial banks.

    With GRIDMKT_DATABASE_URL unset, commands use an embedded PostGIS cluster
    under $GRIDMKT_HOME (default ./.gridmkt), starting it when needed.
    Every command takes --json and then prints one JSON object.
    """


USER_HELP = "Who makes the change (recorded in the audit log and history; default: the OS user)."
user_option = click.option("--user", default=None, help=USER_HELP)


def actor(user: str | None) -> str:
    """Who a command acts as: ``--user``, else the operating-system user (as the API records the signed-in user)."""
    return user or getpass.getuser()


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
