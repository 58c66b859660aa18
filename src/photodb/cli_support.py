"""What the CLIs share: settings or one clear line, the database, an optional --collection name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from photodb.config import Settings, load_settings
from photodb.config_errors import EXIT_CONFIG, ConfigurationError
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database, DatabaseUnavailable
from photodb.database.migrations import MigrationError


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
def open_for_collection(collection: str | None) -> Iterator[tuple[Database, int | None]]:
    """The database and the id of `collection` (None: all); failures become one-line CLI errors."""
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
        yield db, collection_id
