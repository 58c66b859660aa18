"""A small Anthropic API on 127.0.0.1 for the real SDK: messages, message batches, models.

Scripted: `message_replies` answers POST /v1/messages in order (then a valid analysis, as a tool
call when the request forces one, as instructor does); a batch ends after `polls_to_end`
retrievals (or when `end_batch` is called) and its results, streamed as JSONL from an absolute
results_url, follow `batch_script` per custom_id plus `extra_results`. Every request is recorded
(tests.enrich.protocol) so tests can look for leaked secrets.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.enrich.protocol import USAGE, LocalServer, Reply, analysis, default_reply, message


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


class AnthropicServer(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.message_replies: list[Reply] = []
        self.batches: dict[str, Batch] = {}
        self.polls_to_end: int | None = 1  # None: only end_batch() ends a batch
        self.batch_script: dict[str, dict[str, Any]] = {}  # custom_id -> result object
        self.extra_results: list[str] = []  # raw JSONL lines added to every result file
        self.batch_usage = dict(USAGE)
        self.keep_params = True  # False: keep only the custom ids of a batch (benchmarks send thousands)
        self.create_replies: list[Reply] = []  # scripted answers to POST /v1/messages/batches
        self.retrieved = threading.Event()

    def count(self, method: str, path: str) -> int:
        return len(self.requests(method, path))

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

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        if method == "POST":
            return self._post(path, body)
        return self._get(path.strip("/").split("/"))

    def answered(self, method: str, path: str) -> None:
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:3] == ["v1", "messages", "batches"] and len(parts) == 4:
            self.retrieved.set()

    def _post(self, path: str, body: bytes) -> Reply:
        if path == "/v1/messages":
            with self.lock:
                reply = self.message_replies.pop(0) if self.message_replies else None
            return reply or default_reply(body)
        if path != "/v1/messages/batches":
            return error(404, "not_found_error", "no such endpoint")
        with self.lock:
            scripted = self.create_replies.pop(0) if self.create_replies else None
        if scripted is not None:
            return scripted
        requests = json.loads(body)["requests"]
        batch = Batch(
            f"msgbatch_{uuid.uuid4().hex[:16]}",
            [r["custom_id"] for r in requests],
            [r["params"] for r in requests] if self.keep_params else [],
            datetime.now(UTC),
        )
        with self.lock:
            self.batches[batch.id] = batch
            return Reply(body=self._batch_object(batch))

    def _get(self, parts: list[str]) -> Reply:
        if parts[:2] == ["v1", "models"] and len(parts) == 3:
            return Reply(body={"type": "model", "id": parts[2], "display_name": parts[2],
                               "created_at": "2026-06-01T00:00:00Z"})  # fmt: skip
        if parts[:3] != ["v1", "messages", "batches"] or len(parts) < 4 or parts[3] not in self.batches:
            return error(404, "not_found_error", "no such batch")
        batch = self.batches[parts[3]]
        if len(parts) == 5 and parts[4] == "results":
            if not batch.ended:
                return error(400, "invalid_request_error", "batch still in progress")
            data = "".join(line + "\n" for line in self._result_lines(batch))
            return Reply(body=data, headers={"content-type": "application/binary"})
        with self.lock:
            batch.polls += 1
            if self.polls_to_end is not None and batch.polls >= self.polls_to_end:
                batch.ended = True
            return Reply(body=self._batch_object(batch))


@contextmanager
def running() -> Iterator[AnthropicServer]:
    server = AnthropicServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
