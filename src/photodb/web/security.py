"""Who may use the local page, and cross-site request protection.

Other users of this machine can reach 127.0.0.1 too, so the page opens only for whoever holds the
secret `photodb web` makes at start and prints in its address (`/?token=…`, as Jupyter does): that
first request sets the token as an HttpOnly SameSite=Strict cookie and redirects to the clean
address; any request with neither gets 403 and a line saying how to open the page.

Any web page the user visits could post a form to 127.0.0.1, so every POST must also carry the token
in the form (written into every form) and, when the browser names one, an Origin equal to the page's
own. A Host other than 127.0.0.1 or localhost is refused on every response (a rebound DNS name
pointing at 127.0.0.1). The message shown after a change is signed with a key of this server, so a
link cannot make the page say something PhotoDB did not."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "photodb_token"
FIELD = "token"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
HOW_TO_OPEN = "open the address `photodb web` printed when it started (http://127.0.0.1:PORT/?token=…)"


class Forbidden(Exception):
    """The request is refused (403): the reason is shown, never the token."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _same(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def check_host(request: Request) -> None:
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if name not in LOCAL_HOSTS:
        raise Forbidden(f"host {host!r} is not this local server")


def check_post(request: Request, form_token: str | None, session_token: str) -> None:
    """A POST is ours: same Origin (when sent), and the session token in both cookie and form."""
    check_host(request)
    origin = request.headers.get("origin")
    if origin is not None and origin != f"http://{request.headers.get('host', '')}":
        raise Forbidden(f"cross-site request from {origin!r} refused")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise Forbidden("cross-site request refused")
    if not (_same(form_token, session_token) and _same(request.cookies.get(COOKIE), session_token)):
        raise Forbidden("missing or wrong session token: reload the page")


class OwnerOnly:
    """ASGI middleware in front of every route, static files and 404s included: a local Host, then
    the session cookie, or the token in the address (once, turned into the cookie)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._refusal(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        try:
            check_host(request)
        except Forbidden as error:
            return PlainTextResponse(f"forbidden: {error}", status_code=403)
        if request.method in ("GET", "HEAD") and _same(request.query_params.get(FIELD), self.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != FIELD]
            clean = URL(path=request.url.path, query=urlencode(rest))
            response = RedirectResponse(str(clean), status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return response
        if _same(request.cookies.get(COOKIE), self.token):
            return None
        return PlainTextResponse(f"forbidden: this page is its owner's only: {HOW_TO_OPEN}\n", status_code=403)


class MessageSigner:
    """Signs the one-line message of a change, and the change's id its Undo button reverts, for the
    redirect to the page that shows them: a crafted address shows neither."""

    def __init__(self, token: str) -> None:
        self._key = hmac.new(token.encode(), b"photodb web message", hashlib.sha256).digest()

    def _signature(self, message: str, undo: str) -> str:
        return hmac.new(self._key, f"{undo}\n{message}".encode(), hashlib.sha256).hexdigest()

    def query(self, message: str, change_id: int | None = None) -> str:
        undo = "" if change_id is None else str(change_id)
        fields = {"message": message} | ({"undo": undo} if undo else {})
        return urlencode(fields | {"signature": self._signature(message, undo)})

    def verified(self, request: Request) -> tuple[str | None, str | None]:
        """The message and change id of the address if this server signed them, else none."""
        message = request.query_params.get("message")
        undo = request.query_params.get("undo", "")
        signature = request.query_params.get("signature", "")
        if message is None or not secrets.compare_digest(signature.encode(), self._signature(message, undo).encode()):
            return None, None
        return message, undo or None
