"""What the CLIs share: settings or one clear line, the database, an optional --collection name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from photodb.config import Settings, load_settings
from photodb.config_errors import EXIT_CONFIG, ConfigurationError
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database, DatabaseUnavailable
from photodb.database.migrations import MigrationError
from photodb.database.repository import has_photos
from photodb.logging_setup import configure_logging


def usage_error(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """Bad usage: one line on stderr, then exit (2 by default)."""
    Console(stderr=True).print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    sys.exit(code)


class OneLineErrorsGroup(click.Group):
    """A command group whose subcommands report bad usage (a non-integer id, an unknown option or
    subcommand, a missing argument) as one line and exit 2, like every other bad input, instead of
    click's usage block."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else ctx.command_path
            message = " ".join(error.format_message().split())
            usage_error(f"{message} (see {where} --help)", error.exit_code)


def settings_or_exit() -> Settings:
    """The settings; an invalid one ends the command: one line per problem on stderr, exit 2."""
    try:
        return load_settings()
    except ConfigurationError as error:
        console = Console(stderr=True)
        for line in str(error).splitlines():
            console.print(f"[red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)
        sys.exit(EXIT_CONFIG)


@contextmanager
def open_for_collection(
    collection: str | None, *, library_first: bool = False
) -> Iterator[tuple[Database, int | None]]:
    """The database and the id of `collection` (None: all); failures become one-line CLI errors.

    The library line (`announce_library`) follows the command's work, or comes first with
    `library_first` (a server that runs until stopped); a command that fails says only its error.
    """
    settings = settings_or_exit()
    try:
        db = Database(settings, pool_size=2)
    except (DatabaseUnavailable, MigrationError) as error:
        raise click.ClickException(str(error)) from error
    with db:
        collection_id = None
        if collection is not None:
            with db.connection() as conn:
                collection_id = face_db.collection_id_by_name(conn, collection)
            if collection_id is None:  # bad usage, like an unknown id: one line, exit 2
                usage_error(f"no collection named {collection!r}")
        if library_first:
            announce_library(settings, db)
        yield db, collection_id
        if not library_first:
            announce_library(settings, db)


def library_line(settings: Settings, db: Database | None = None) -> str:
    """The first line of a command's report: which library it works on, and whether that is an
    empty new one (a forgotten PHOTODB_HOME makes a second library without a word otherwise)."""
    if db is not None and not db.call("checking for photos", _has_photos, db):
        return f"new library at {settings.library}, nothing indexed yet — run `photodb index PATH`"
    return f"library: {settings.library}"


def _has_photos(db: Database) -> bool:
    with db.connection() as conn:
        return has_photos(conn)


def announce_library(settings: Settings, db: Database | None = None) -> None:
    """Print `library_line` on stderr (stdout stays the command's output, JSON included)."""
    Console(stderr=True).print(escape(library_line(settings, db)), style="dim", soft_wrap=True, highlight=False)


_VERBOSE = "photodb.verbose"
VERBOSE_HELP = "Show the whole log on the console, down to debug lines (else warnings only; LOG_FILE gets LOG_LEVEL)."


def _set_up_logging(ctx: click.Context, param: click.Parameter, verbose: bool) -> None:
    if ctx.resilient_parsing:
        return
    verbose = verbose or ctx.find_root().meta.get(_VERBOSE, False)  # `photodb -v people list` too
    ctx.find_root().meta[_VERBOSE] = verbose
    configure_logging(settings_or_exit(), Console(stderr=True), verbose)


def verbose_option(function: Any) -> Any:
    """`-v/--verbose` for a command or group: sets up logging (quiet console, INFO in LOG_FILE;
    with -v everything down to DEBUG on the console too), the one way every CLI does it."""
    return click.option(
        "--verbose",
        "-v",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_up_logging,
        help=VERBOSE_HELP,
    )(function)
