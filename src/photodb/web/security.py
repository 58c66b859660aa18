"""Cross-site request protection for the local page.

Any web page the user visits could post a form to 127.0.0.1, so every POST must carry the token of
this server session (made at start, set as a SameSite=Strict cookie and written into every form)
and, when the browser names one, an Origin equal to the page's own. A Host other than 127.0.0.1 or
localhost is refused too (a rebound DNS name pointing at 127.0.0.1)."""

from __future__ import annotations

import secrets

from starlette.requests import Request

COOKIE = "photodb_token"
FIELD = "token"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class Forbidden(Exception):
    """The request is refused (403): the reason is shown, never the token."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


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
    cookie = request.cookies.get(COOKIE, "")
    if not (
        form_token
        and secrets.compare_digest(form_token.encode(), session_token.encode())
        and secrets.compare_digest(cookie.encode(), session_token.encode())
    ):
        raise Forbidden("missing or wrong session token: reload the page")
