"""The Starlette application of `photodb web`: server-rendered pages, one POST route for every
change (actions.ACTIONS), face and photo thumbnails, all behind security.OwnerOnly. Bad input is
a 400 with its message (web.fields). Database work runs in Starlette's thread pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.search.service import TextEncoder
from photodb.web import actions, fields, pages, people_pages, security
from photodb.web.thumbnails import ThumbnailMissing, face_thumbnail, photo_thumbnail

STATIC_DIR = Path(__file__).parent / "static"

Thumbnailer = Callable[[Database, Path, Path, int], Path]


@dataclass(frozen=True)
class WebContext:
    db: Database
    settings: Settings
    images_dir: Path
    thumbnail_cache: Path
    collection_id: int | None
    token: str
    #: One CLIP text encoder for the server's life (loaded on the first text search), not one per request.
    text_encoder: TextEncoder | None = None


def create_app(context: WebContext) -> Starlette:
    templates = Environment(loader=PackageLoader("photodb.web"), autoescape=select_autoescape(["html"]))
    signer = security.MessageSigner(context.token)

    def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        message, undo = signer.verified(request)
        html = templates.get_template(template).render(
            token=context.token, message=message, undo=undo, path=request.url.path, **values
        )
        return HTMLResponse(html, status_code)

    def error_page(error: Exception, back: str, status_code: int) -> HTMLResponse:
        return HTMLResponse(templates.get_template("error.html").render(error=str(error), back=back), status_code)

    def query_of(request: Request) -> dict[str, str]:
        return fields.text_fields(request.query_params.multi_items())

    def people_route(route: people_pages.PageRoute) -> Route:
        async def handler(request: Request) -> Response:
            query = query_of(request)
            try:
                data = await run_in_threadpool(
                    route.build, context.db, context.collection_id, request.path_params, query
                )
            except people_pages.PAGE_ERRORS as error:
                return error_page(error, "/", 404 if isinstance(error, people_pages.NOT_FOUND) else 400)
            return render(request, route.template, **data)

        return Route(route.path, handler)

    async def review_page(request: Request) -> Response:
        query_of(request)
        data = await run_in_threadpool(pages.review_page, context.db, context.collection_id)
        return render(request, "review.html", **data)

    async def quality_page(request: Request) -> Response:
        query_of(request)
        data = await run_in_threadpool(pages.quality, context.db, context.collection_id)
        return render(request, "quality.html", **data)

    async def search_page(request: Request) -> Response:
        query = query_of(request)
        try:
            data = await run_in_threadpool(
                pages.search, context.db, context.settings, query, context.collection_id, context.text_encoder
            )
        except pages.SEARCH_ERRORS as error:
            return render(request, "search.html", 400, query=query, results=None, error=str(error))
        return render(request, "search.html", query=query, error=None, **data)

    async def photo_page(request: Request) -> Response:
        query_of(request)
        try:
            data = await run_in_threadpool(
                pages.photo, context.db, request.path_params["photo_id"], context.collection_id
            )
        except pages.BadQuery as error:
            return error_page(error, "/search", 404)
        return render(request, "photo.html", **data)

    async def split_page(request: Request) -> Response:
        try:
            data = await run_in_threadpool(pages.split_page, context.db, query_of(request))
        except pages.SPLIT_ERRORS as error:
            return error_page(error, "/", 400)
        return render(request, "split.html", **data)

    def thumbnail(make: Thumbnailer) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                path = await run_in_threadpool(
                    make, context.db, context.images_dir, context.thumbnail_cache, request.path_params["object_id"]
                )
            except ThumbnailMissing as error:
                return PlainTextResponse(str(error), status_code=404)
            return FileResponse(path, media_type="image/jpeg")

        return serve

    async def action(request: Request) -> Response:
        submitted = await request.form()
        form_token = submitted.get(security.FIELD)
        security.check_post(request, form_token if isinstance(form_token, str) else None, context.token)
        form = fields.text_fields(submitted.multi_items())
        name = request.path_params["name"]
        try:
            message, change_id = await run_in_threadpool(actions.run, context.db, name, form, context.collection_id)
        except actions.USER_ERRORS as error:
            return error_page(error, _local(form.get("next")), 400)
        return RedirectResponse(f"{_local(form.get('next'))}?{signer.query(message, change_id)}", status_code=303)

    async def forbidden(_request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"forbidden: {error}", status_code=403)

    async def bad_input(_request: Request, error: Exception) -> Response:
        return error_page(error, "/", 400)

    return Starlette(
        routes=[
            *(people_route(route) for route in people_pages.ROUTES),
            Route("/review", review_page),
            Route("/quality", quality_page),
            Route("/split", split_page),
            Route("/search", search_page),
            Route("/photo/{photo_id:id}", photo_page),
            Route("/face/{object_id:id}.jpg", thumbnail(face_thumbnail)),
            Route("/photo/{object_id:id}.jpg", thumbnail(photo_thumbnail)),
            Route("/action/{name}", action, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(security.OwnerOnly, token=context.token)],
        exception_handlers={security.Forbidden: forbidden, fields.BadInput: bad_input},
    )


def _local(target: str | None) -> str:
    """Where to go after a change: a path of this server only (never another site)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path
