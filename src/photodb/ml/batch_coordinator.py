"""Collect ML inference requests from worker threads and run them as one batched call.

With `--parallel N`, N worker threads would each call the model for one photo at a time; a
batched call amortises per-call overhead (kernel launch, model dispatch, Python glue). A daemon
thread takes the first waiting request, gathers more until `max_batch_size` or `max_wait_ms`,
runs `inference_fn` once, and hands each caller its own slice of the output through a Future.

Batch modes (how requests are combined and results split back):

- ``scalar``: each request is one object; the batch is the list of them and `inference_fn`
  returns one result per request.
- ``list``: each request is a list; the batch is their concatenation and the result list is cut
  back by the requests' lengths.
- ``tensor``: each request is a torch tensor or numpy array with a leading batch dimension; the
  batch is `torch.cat` / `np.concatenate` and the output is split by the tracked sizes.

Failure handling: when a batched call raises, each request is retried on its own so that the
exception reaches only the caller whose input caused it. When the coordinator thread stops for
any reason, every waiting future fails instead of blocking its caller forever.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

BatchMode = Literal["scalar", "list", "tensor"]


class CoordinatorClosed(RuntimeError):
    """The coordinator was shut down (or its thread died) before this request ran."""


@dataclass
class _Request:
    item: Any
    size: int
    future: Future[Any]


_STOP = object()


def _autorelease_pool() -> contextlib.AbstractContextManager[Any]:
    """On macOS, drain the Metal/MPS Objective-C objects each batch creates (they leak otherwise)."""
    if sys.platform == "darwin":
        try:
            import objc  # type: ignore[import-not-found]

            return objc.autorelease_pool()
        except ImportError:
            pass
    return contextlib.nullcontext()


class BatchCoordinator:
    """Batches requests from many threads into single calls of `inference_fn`.

    `max_clients`, when given, is the number of threads that can submit (the worker count): once
    that many requests wait, nobody else can add one, so the batch runs at once instead of
    sitting out the rest of `max_wait_ms`.
    """

    def __init__(
        self,
        inference_fn: Callable[[Any], Any],
        *,
        mode: BatchMode = "scalar",
        max_batch_size: int = 32,
        max_wait_ms: float = 50,
        max_clients: int | None = None,
        name: str = "batch",
    ) -> None:
        if mode not in ("scalar", "list", "tensor"):
            raise ValueError(f"unknown batch mode {mode!r}")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.inference_fn = inference_fn
        self.mode: BatchMode = mode
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_clients = max_clients
        self.name = name
        self.batches_run = 0
        self.items_run = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._in_flight: list[_Request] = []
        self._closed = threading.Event()
        self._submit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    # -- callers -----------------------------------------------------------------------------

    def submit(self, item: Any) -> Future[Any]:
        """Queue one request; the future gets this request's share of the batched output."""
        future: Future[Any] = Future()
        with self._submit_lock:
            if self._closed.is_set() or not self._thread.is_alive():
                raise CoordinatorClosed(f"batch coordinator {self.name!r} is closed")
            self._queue.put(_Request(item, self._size_of(item), future))
        return future

    def run(self, item: Any, timeout: float | None = None) -> Any:
        """Submit and wait: the blocking call a worker thread uses."""
        return self.submit(item).result(timeout)

    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop taking requests; requests already queued still run before the thread exits."""
        with self._submit_lock:
            if not self._closed.is_set():
                self._closed.set()
                self._queue.put(_STOP)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> BatchCoordinator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # -- the coordinator thread ---------------------------------------------------------------

    def _size_of(self, item: Any) -> int:
        if self.mode == "scalar":
            return 1
        if self.mode == "list":
            if not isinstance(item, Sequence):
                raise TypeError(f"list-mode coordinator {self.name!r} takes sequences, got {type(item).__name__}")
            return len(item)
        shape = getattr(item, "shape", None)
        if not shape:
            raise TypeError(f"tensor-mode coordinator {self.name!r} takes batched arrays, got {type(item).__name__}")
        return int(shape[0])

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """Gather requests after `first` until the batch is full, the wait is over or a stop arrives."""
        batch = [first]
        size = first.size
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            if self.max_clients is not None and len(batch) >= self.max_clients:
                break
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
            size += nxt.size
        return batch, False

    def _loop(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch, stopping = self._collect(first)
                self._run(batch)
        except BaseException as error:  # logged, not re-raised: the thread must never leave callers waiting
            log.exception("batch coordinator %s stopped", self.name)
            died = CoordinatorClosed(f"batch coordinator {self.name!r} died: {error!r}")
            for request in self._in_flight:
                if not request.future.done():
                    request.future.set_exception(died)
            self._fail_pending(died)
        finally:
            self._closed.set()
            self._fail_pending(CoordinatorClosed(f"batch coordinator {self.name!r} is closed"))

    def _fail_pending(self, error: BaseException) -> None:
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not _STOP and pending.future.set_running_or_notify_cancel():
                pending.future.set_exception(error)

    def _run(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        self._in_flight = live
        if not live:
            return
        try:
            with _autorelease_pool():
                results = self._split(self.inference_fn(self._combine(live)), live)
        except Exception as error:
            if len(live) == 1:
                live[0].future.set_exception(error)
                return
            # Find the culprit: run each request alone so only its caller sees the exception.
            for request in live:
                try:
                    with _autorelease_pool():
                        (result,) = self._split(self.inference_fn(self._combine([request])), [request])
                except Exception as single_error:
                    request.future.set_exception(single_error)
                else:
                    request.future.set_result(result)
            return
        self.batches_run += 1
        self.items_run += len(live)
        for request, result in zip(live, results, strict=True):
            request.future.set_result(result)

    def _combine(self, requests: list[_Request]) -> Any:
        items = [r.item for r in requests]
        if self.mode == "scalar":
            return items
        if self.mode == "list":
            return [x for item in items for x in item]
        if _is_torch(items[0]):
            import torch

            return torch.cat(items) if len(items) > 1 else items[0]
        import numpy as np

        return np.concatenate(items) if len(items) > 1 else items[0]

    def _split(self, output: Any, requests: list[_Request]) -> list[Any]:
        sizes = [r.size for r in requests]
        if self.mode == "tensor":
            if _is_torch(output):
                import torch

                return list(torch.split(output, sizes))
            import numpy as np

            return list(np.split(output, np.cumsum(sizes)[:-1]))
        output = list(output)
        if len(output) != sum(sizes):
            raise ValueError(
                f"batch coordinator {self.name!r}: inference returned {len(output)} results for {sum(sizes)} inputs"
            )
        if self.mode == "scalar":
            return output
        return list(_cut(output, sizes))


def _cut(values: list[Any], sizes: list[int]) -> Iterator[list[Any]]:
    start = 0
    for size in sizes:
        yield values[start : start + size]
        start += size


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")
