"""What the local provider servers share: scripted replies, Anthropic-shaped messages, a recording HTTP server.

`LocalServer` listens on 127.0.0.1 (a free port), records every request (method, path without the
query and unquoted, lower-case headers, body) so tests can look for leaked secrets, and hands each
one to the subclass's `answer`; `answered` runs after the reply has been written.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import unquote

USAGE = {"input_tokens": 1200, "output_tokens": 400, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900}
MODEL = "claude-sonnet-5-5"


def analysis(description: str = "Two friends hiking above a lake.", **overrides: Any) -> dict[str, Any]:
    """A reply that fits PhotoAnalysisResponse."""
    value: dict[str, Any] = {
        "description": description,
        "quality": {"score": 0.8, "notes": []},
        "time": {"season": "summer", "time_of_day": "afternoon", "date_estimate": None, "confidence": 0.7},
        "location": {"environment": "outdoor", "description": "alpine lake", "hypotheses": []},
        "people": {"count": 2, "faces": [], "description": "two hikers"},
        "activities": {"primary": "hiking", "secondary": [], "event_type": None},
        "objects": [{"name": "backpack", "confidence": 0.9, "count": 2}],
        "text_in_image": [],
        "tags": ["hiking", "lake"],
        "emotional_tone": "joyful",
        "confidence": 0.85,
    }
    value.update(overrides)
    return value


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)


def _message(content: list[dict[str, Any]], usage: dict[str, int] | None, stop_reason: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(usage or USAGE),
    }


def message(text: str, usage: dict[str, int] | None = None, stop_reason: str = "end_turn") -> dict[str, Any]:
    """A text reply: what a structured-output request (batch items) gets back."""
    return _message([{"type": "text", "text": text}], usage, stop_reason)


def tool_message(value: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A forced tool call: what instructor's TOOLS-mode request (one photo, --no-batch) gets back."""
    call = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": "PhotoAnalysisResponse", "input": value}
    return _message([call], usage, "tool_use")


def default_reply(body: bytes) -> Reply:
    """A valid analysis in the form the request asks for: a tool call when it forces one, text otherwise."""
    request = json.loads(body or b"{}")
    if (request.get("tool_choice") or {}).get("type") == "tool":
        return Reply(body=tool_message(analysis()))
    return Reply(body=message(json.dumps(analysis())))


class Recorded(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers them through `answer`."""

    def __init__(self) -> None:
        self.log: list[Recorded] = []
        self.lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def requests(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.log if (r.method, r.path) == (method, path)]

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        raise NotImplementedError

    def answered(self, method: str, path: str) -> None:
        """Called once the reply has been sent (tests wait on events set here)."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = unquote(self.path.split("?")[0])
                headers = {name.lower(): value for name, value in self.headers.items()}
                with server.lock:
                    server.log.append(Recorded(self.command, path, headers, body))
                reply = server.answer(self.command, path, body)
                text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = text.encode()
                self.send_response(reply.status)
                extra = dict(reply.headers)
                self.send_header("content-type", extra.pop("content-type", "application/json"))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                server.answered(self.command, path)

            do_GET = do_POST = _serve

        return Handler
