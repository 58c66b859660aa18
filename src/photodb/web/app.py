"""The Starlette application of `photodb web`: server-rendered pages, one POST route for every
change (actions.ACTIONS), face thumbnails. Database work runs in Starlette's thread pool."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.search.service import TextEncoder
from photodb.web import actions, pages, people_pages, security
from photodb.web.thumbnails import ThumbnailMissing, face_thumbnail, photo_thumbnail

STATIC_DIR = Path(__file__).parent / "static"


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

    def render(request: Request, template: str, **values: Any) -> HTMLResponse:
        security.check_host(request)
        html = templates.get_template(template).render(
            token=context.token, message=request.query_params.get("message"), path=request.url.path, **values
        )
        response = HTMLResponse(html)
        response.set_cookie(security.COOKIE, context.token, httponly=True, samesite="strict")
        return response

    def people_route(route: people_pages.PageRoute) -> Route:
        async def handler(request: Request) -> Response:
            try:
                data = await run_in_threadpool(
                    route.build, context.db, context.collection_id, request.path_params, request.query_params
                )
            except people_pages.PAGE_ERRORS as error:
                status = 400 if isinstance(error, pages.BadQuery) else 404
                return HTMLResponse(templates.get_template("error.html").render(error=str(error), back="/"), status)
            return render(request, route.template, **data)

        return Route(route.path, handler)

    async def review_page(request: Request) -> Response:
        data = await run_in_threadpool(pages.review_page, context.db, context.collection_id)
        return render(request, "review.html", **data)

    async def quality_page(request: Request) -> Response:
        data = await run_in_threadpool(pages.quality, context.db, context.collection_id)
        return render(request, "quality.html", **data)

    async def search_page(request: Request) -> Response:
        query = dict(request.query_params)
        try:
            data = await run_in_threadpool(
                pages.search, context.db, context.settings, query, context.collection_id, context.text_encoder
            )
        except pages.SEARCH_ERRORS as error:
            return render(request, "search.html", query=query, results=None, error=str(error))
        return render(request, "search.html", query=query, error=None, **data)

    async def photo_page(request: Request) -> Response:
        try:
            data = await run_in_threadpool(
                pages.photo, context.db, request.path_params["photo_id"], context.collection_id
            )
        except pages.BadQuery as error:
            return HTMLResponse(templates.get_template("error.html").render(error=str(error), back="/search"), 404)
        return render(request, "photo.html", **data)

    async def split_page(request: Request) -> Response:
        try:
            data = await run_in_threadpool(pages.split_page, context.db, dict(request.query_params))
        except pages.SPLIT_ERRORS as error:
            return HTMLResponse(templates.get_template("error.html").render(error=str(error), back="/"), 400)
        return render(request, "split.html", **data)

    async def thumbnail(request: Request) -> Response:
        security.check_host(request)
        make = face_thumbnail if request.path_params["kind"] == "face" else photo_thumbnail
        try:
            path = await run_in_threadpool(
                make, context.db, context.images_dir, context.thumbnail_cache, request.path_params["object_id"]
            )
        except ThumbnailMissing as error:
            return PlainTextResponse(str(error), status_code=404)
        return FileResponse(path, media_type="image/jpeg")

    async def action(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        security.check_post(request, form.get(security.FIELD), context.token)
        name = request.path_params["name"]
        try:
            message = await run_in_threadpool(actions.run, context.db, name, form, context.collection_id)
        except actions.USER_ERRORS as error:
            page = templates.get_template("error.html").render(error=str(error), back=_local(form.get("next")))
            return HTMLResponse(page, status_code=400)
        return RedirectResponse(f"{_local(form.get('next'))}?message={quote(message)}", status_code=303)

    async def forbidden(_request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"forbidden: {error}", status_code=403)

    return Starlette(
        routes=[
            *(people_route(route) for route in people_pages.ROUTES),
            Route("/review", review_page),
            Route("/quality", quality_page),
            Route("/split", split_page),
            Route("/search", search_page),
            Route("/photo/{photo_id:int}", photo_page),
            Route("/{kind:str}/{object_id:int}.jpg", thumbnail),
            Route("/action/{name}", action, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={security.Forbidden: forbidden},
    )


def _local(target: str | None) -> str:
    """Where to go after a change: a path of this server only (never another site)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path
