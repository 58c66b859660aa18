"""A small Anthropic API on 127.0.0.1 for the real SDK: messages, message batches, models.

Scripted: `message_replies` answers POST /v1/messages in order (then a valid analysis); a batch
ends after `polls_to_end` retrievals (or when `end_batch` is called) and its results, streamed as
JSONL from an absolute results_url, follow `batch_script` per custom_id plus `extra_results`.
Every request is recorded (method, path, headers, body) so tests can look for leaked secrets.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"input_tokens": 1200, "output_tokens": 400, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900}


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


def message(text: str, usage: dict[str, int] | None = None, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": dict(usage or USAGE),
    }


def error(status: int, kind: str, text: str, **headers: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": text}}, headers)


@dataclass
class Batch:
    id: str
    custom_ids: list[str]
    params: list[dict[str, Any]]
    created_at: datetime
    polls: int = 0
    ended: bool = False


class AnthropicServer:
    def __init__(self) -> None:
        self.message_replies: list[Reply] = []
        self.batches: dict[str, Batch] = {}
        self.polls_to_end: int | None = 1  # None: only end_batch() ends a batch
        self.batch_script: dict[str, dict[str, Any]] = {}  # custom_id -> result object
        self.extra_results: list[str] = []  # raw JSONL lines added to every result file
        self.batch_usage = dict(USAGE)
        self.keep_params = True  # False: keep only the custom ids of a batch (benchmarks send thousands)
        self.create_replies: list[Reply] = []  # scripted answers to POST /v1/messages/batches
        self.log: list[tuple[str, str, dict[str, str], bytes]] = []
        self.retrieved = threading.Event()
        self.lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _, _ in self.log if m == method and p == path)

    def end_batch(self, batch_id: str) -> None:
        with self.lock:
            self.batches[batch_id].ended = True

    # -- protocol ------------------------------------------------------------------------------

    def _batch_object(self, batch: Batch) -> dict[str, Any]:
        ended = batch.ended
        n = len(batch.custom_ids)
        counts = {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            counts["processing"] = 0
            for cid in batch.custom_ids:
                kind = self.batch_script.get(cid, {}).get("type", "succeeded")
                counts[kind] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": batch.created_at.isoformat(),
            "expires_at": (batch.created_at + timedelta(hours=24)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def _result_lines(self, batch: Batch) -> Iterator[str]:
        for cid in batch.custom_ids:
            result = self.batch_script.get(cid) or {
                "type": "succeeded",
                "message": message(json.dumps(analysis(f"Photo {cid}.")), self.batch_usage),
            }
            yield json.dumps({"custom_id": cid, "result": result})
        yield from self.extra_results

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, reply: Reply) -> None:
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = body.encode()
                self.send_response(reply.status)
                self.send_header("content-type", reply.headers.pop("content-type", "application/json"))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                with server.lock:
                    server.log.append((self.command, self.path.split("?")[0], headers, body))
                return body

            def do_POST(self) -> None:
                body = self._record()
                path = self.path.split("?")[0]
                if path == "/v1/messages":
                    with server.lock:
                        reply = server.message_replies.pop(0) if server.message_replies else None
                    self._send(reply or Reply(body=message(json.dumps(analysis()))))
                elif path == "/v1/messages/batches":
                    with server.lock:
                        scripted = server.create_replies.pop(0) if server.create_replies else None
                    if scripted is not None:
                        self._send(scripted)
                        return
                    requests = json.loads(body)["requests"]
                    batch = Batch(
                        f"msgbatch_{uuid.uuid4().hex[:16]}",
                        [r["custom_id"] for r in requests],
                        [r["params"] for r in requests] if server.keep_params else [],
                        datetime.now(UTC),
                    )
                    with server.lock:
                        server.batches[batch.id] = batch
                        self._send(Reply(body=server._batch_object(batch)))
                else:
                    self._send(error(404, "not_found_error", "no such endpoint"))

            def do_GET(self) -> None:
                self._record()
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["v1", "models"] and len(parts) == 3:
                    self._send(Reply(body={"type": "model", "id": parts[2], "display_name": parts[2],
                                           "created_at": "2026-06-01T00:00:00Z"}))  # fmt: skip
                    return
                if parts[:3] != ["v1", "messages", "batches"] or len(parts) < 4 or parts[3] not in server.batches:
                    self._send(error(404, "not_found_error", "no such batch"))
                    return
                batch = server.batches[parts[3]]
                if len(parts) == 5 and parts[4] == "results":
                    if not batch.ended:
                        self._send(error(400, "invalid_request_error", "batch still in progress"))
                        return
                    data = "".join(line + "\n" for line in server._result_lines(batch))
                    self._send(Reply(body=data, headers={"content-type": "application/binary"}))
                    return
                with server.lock:
                    batch.polls += 1
                    if server.polls_to_end is not None and batch.polls >= server.polls_to_end:
                        batch.ended = True
                    answer = server._batch_object(batch)
                self._send(Reply(body=answer))
                server.retrieved.set()

        return Handler

    def start(self) -> AnthropicServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


@contextmanager
def running() -> Iterator[AnthropicServer]:
    server = AnthropicServer().start()
    try:
        yield server
    finally:
        server.close()
