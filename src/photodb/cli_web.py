"""photodb web: the local review page (photodb.web) on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import click
import uvicorn

from photodb.cli_support import open_for_collection, settings_or_exit, verbose_option
from photodb.ml.clip import create_clip_model
from photodb.web import security
from photodb.web.app import WebContext, create_app
from photodb.web.thumbnails import cache_dir

HOST = "127.0.0.1"


@click.command("web", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="port on 127.0.0.1")
@click.option("--collection", default=None, help="collection name (only its people)")
@verbose_option
def web_command(port: int, collection: str | None) -> None:
    """Review people in a browser: name, merge, hide, verify, "not this person", match candidates.

    Serves on 127.0.0.1 only, with no account; every change goes through the same code as
    `photodb people` and needs this session's token (set by the page itself).
    """
    settings = settings_or_exit()
    with open_for_collection(collection, library_first=True) as (db, collection_id):
        context = WebContext(
            db=db,
            settings=settings,
            images_dir=settings.images_dir,
            thumbnail_cache=cache_dir(settings.photodb_home),
            collection_id=collection_id,
            token=security.new_token(),
            text_encoder=create_clip_model(settings),
        )
        click.echo(f"photodb web: http://{HOST}:{port}/ (Ctrl-C stops)")
        # log_config=None: uvicorn's lines go through PhotoDB's logging (LOG_FILE; the console with -v)
        uvicorn.run(create_app(context), host=HOST, port=port, log_level="info", access_log=False, log_config=None)
