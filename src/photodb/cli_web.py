"""photodb web: the local review page (photodb.web) on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import socket

import click
import uvicorn

from photodb.cli_support import open_for_collection, settings_or_exit, usage_error, verbose_option
from photodb.ml.clip import create_clip_model
from photodb.utils.private import private_dir
from photodb.web import security
from photodb.web.app import WebContext, create_app
from photodb.web.thumbnails import cache_dir

HOST = "127.0.0.1"
#: Exit status when the port is taken (as for any bad usage).
EXIT_PORT_BUSY = 2


def listen(port: int) -> socket.socket:
    """The server's socket, bound before anything is printed, so a busy port is one line (exit 2)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after Ctrl-C may rebind
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        usage_error(
            f"cannot serve on {HOST}:{port}: {error.strerror} (another program, or photodb web, uses it: "
            "pick another --port)",
            EXIT_PORT_BUSY,
        )
    return sock


@click.command("web", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="port on 127.0.0.1")
@click.option("--collection", default=None, help="collection name (only its people)")
@verbose_option
def web_command(port: int, collection: str | None) -> None:
    """Review people in a browser: name, merge, hide, verify, "not this person", match candidates.

    Serves on 127.0.0.1 only, for its owner only: it prints an address with a secret made at start
    (http://127.0.0.1:PORT/?token=...; a new one at every start); open that one, and the browser
    keeps the secret as a cookie. Any request without it is refused (403). Every change goes through the
    same code as `photodb people`. A port already in use: one line, exit 2.
    """
    settings = settings_or_exit()
    sock = listen(port)
    with open_for_collection(collection, library_first=True) as (db, collection_id):
        token = security.new_token()
        context = WebContext(
            db=db,
            settings=settings,
            images_dir=settings.images_dir,
            thumbnail_cache=private_dir(cache_dir(settings.photodb_home)),  # an older cache is tightened
            collection_id=collection_id,
            token=token,
            text_encoder=create_clip_model(settings),
        )
        click.echo(f"photodb web: http://{HOST}:{port}/?{security.FIELD}={token} (Ctrl-C stops)")
        # log_config=None: uvicorn's lines go through PhotoDB's logging (LOG_FILE; the console with -v)
        config = uvicorn.Config(create_app(context), log_level="info", access_log=False, log_config=None)
        uvicorn.Server(config).run(sockets=[sock])
