"""What every ``gridmkt`` command shares: ``--json``, errors, progress bars, tables."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from geodata.errors import GeodataError

ProgressFn = Callable[[float, str], None]


def _default(o: Any):
    if isinstance(o, (dt.date, dt.datetime)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def dumps(obj: Any) -> str:
    """One-line JSON as printed by ``--json``."""
    return json.dumps(obj, ensure_ascii=False, default=_default)


def console(*, stderr: bool = False) -> Console:
    """A rich console: colour and a terminal's width on a terminal; plain, unwrapped text otherwise.

    Written to a file or a pipe, output must have no escape codes, no wrapping at
    80 columns and no cut table columns, so the width is unlimited there.
    """
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, color_system=None, width=100_000, soft_wrap=True,
                   force_terminal=False, highlight=False, emoji=False)


class Ctx:
    """Per-invocation output state handed to command bodies."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.console = console(stderr=as_json)
        self.printed = False  # set by a command that printed its JSON object itself (before serving)
        self.exit_code = 0  # set by a command whose result is printed but is no success

    @contextmanager
    def progress(self, label: str) -> Iterator[ProgressFn]:
        """A progress callback ``fn(fraction, message)``; a bar on a terminal, silent for --json."""
        if self.as_json or not sys.stderr.isatty():
            yield lambda fraction, message="": None
            return
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[msg]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console(stderr=True), transient=True,
        ) as bar:
            task = bar.add_task(label, total=1.0, msg="")

            def update(fraction: float, message: str = "") -> None:
                bar.update(task, completed=max(0.0, min(1.0, fraction)), msg=message)

            yield update

    @contextmanager
    def progress_factory(self) -> Iterator[Callable[[str], ProgressFn]]:
        """For pipelines: ``factory(label)`` gives a callback with its own bar row, created on first use."""
        if self.as_json or not sys.stderr.isatty():
            yield lambda label: (lambda fraction, message="": None)
            return
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[msg]}"), TimeElapsedColumn(), console=console(stderr=True),
        ) as bar:

            def factory(label: str) -> ProgressFn:
                task = None

                def update(fraction: float, message: str = "") -> None:
                    nonlocal task
                    if task is None:
                        task = bar.add_task(label, total=1.0, msg="")
                    bar.update(task, completed=max(0.0, min(1.0, fraction)), msg=message)

                return update

            yield factory

    def say(self, text: str) -> None:
        if not self.as_json:
            self.console.print(text)


def render(result: Any, console: Console) -> None:
    """Readable rendering of a command result (dicts as key/value, lists of dicts as tables); values are text, not markup."""
    if isinstance(result, dict):
        scalars = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
        if scalars:
            t = Table(show_header=False, box=None)
            for k, v in scalars.items():
                t.add_row(f"[bold]{escape(str(k))}[/bold]", Text(str(v)))
            console.print(t)
        for k, v in result.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                console.print(f"[bold]{escape(str(k))}[/bold] ({len(v)})")
                render(v[:50], console)
                if len(v) > 50:
                    console.print(f"... {len(v) - 50} more (use --json for all)")
            elif isinstance(v, dict) and v:
                console.print(f"[bold]{escape(str(k))}[/bold]: " + escape(", ".join(f"{a}={b}" for a, b in v.items())))
            elif isinstance(v, list):
                console.print(f"[bold]{escape(str(k))}[/bold]: " + escape(", ".join(map(str, v[:50]))))
    elif isinstance(result, list) and result and isinstance(result[0], dict):
        cols = list(result[0].keys())
        t = Table(*(escape(str(c)) for c in cols))
        for row in result:
            t.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in cols))
        console.print(t)
    elif result is not None:
        console.print(Text(str(result)))


def _fail(as_json: bool, exc: BaseException, message: str, code: int) -> None:
    if as_json:
        click.echo(dumps({"ok": False, "error": message, "type": type(exc).__name__}))
    else:
        console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    sys.exit(code)


def command(group: click.Group, name: str | None = None, **kw):
    """Register a command that takes ``--json`` and returns its result as a dict.

    The body receives ``ctx: Ctx`` as first argument. Domain errors become a
    clear message and exit status 2 (``{"ok": false, ...}`` with --json), other
    failures exit status 1 with their first line (the traceback with GRIDMKT_DEBUG=1).
    """

    def deco(fn):
        @group.command(name, **kw)
        @click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
        @functools.wraps(fn)
        def wrapper(as_json: bool, **kwargs):
            ctx = Ctx(as_json)
            try:
                result = fn(ctx, **kwargs)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise  # click reports these (as JSON with --json: see api.cli.JsonGroup)
            except (GeodataError, ValueError, OSError) as exc:
                _fail(as_json, exc, str(exc), 2)
            except Exception as exc:  # never a traceback for the user; GRIDMKT_DEBUG=1 shows it
                if os.environ.get("GRIDMKT_DEBUG"):
                    raise
                _fail(as_json, exc, (str(exc).strip().splitlines() or [""])[0], 1)
            if as_json:
                if not ctx.printed:
                    click.echo(dumps(result if result is not None else {"ok": True}))
            else:
                render(result, ctx.console)
            if ctx.exit_code:
                sys.exit(ctx.exit_code)

        return wrapper

    return deco
