"""BatchCoordinator with real threads: batching, splitting, errors, shutdown, dead threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from photodb.ml.batch_coordinator import BatchCoordinator, CoordinatorClosed


def run_threads(coordinator: BatchCoordinator, items: list, threads: int) -> list:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda item: coordinator.run(item, timeout=10), items))


def test_scalar_mode_batches_requests_and_returns_each_callers_result():
    """A first request holds the model while 40 more queue: they then go in full batches of 8."""
    sizes: list[int] = []
    holding, release = threading.Event(), threading.Event()

    def square(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        holding.set()
        release.wait(10)
        return [x * x for x in batch]

    with BatchCoordinator(square, mode="scalar", max_batch_size=8, max_wait_ms=20) as coordinator:
        plug = coordinator.submit(-1)
        assert holding.wait(10)
        futures = [coordinator.submit(x) for x in range(40)]
        release.set()
        results = [future.result(10) for future in futures]
    assert plug.result(0) == 1 and results == [x * x for x in range(40)]
    assert sizes == [1, 8, 8, 8, 8, 8]
    assert coordinator.batches_run == 6


def test_threads_that_submit_at_once_share_batches():
    sizes: list[int] = []

    def square(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        time.sleep(0.01)  # like a model call: other threads queue meanwhile
        return [x * x for x in batch]

    with BatchCoordinator(square, mode="scalar", max_batch_size=8, max_wait_ms=20) as coordinator:
        results = run_threads(coordinator, list(range(40)), threads=8)
    assert results == [x * x for x in range(40)]
    assert sum(sizes) == 40 and all(1 <= size <= 8 for size in sizes)
    assert coordinator.batches_run == len(sizes) < 40


def test_list_mode_concatenates_and_cuts_back_by_length():
    seen: list[int] = []

    def label(batch: list[str]) -> list[str]:
        seen.append(len(batch))
        return [s.upper() for s in batch]

    requests = [["a"], ["b", "c"], [], ["d", "e", "f"]] * 5
    with BatchCoordinator(label, mode="list", max_batch_size=32, max_wait_ms=30) as coordinator:
        results = run_threads(coordinator, requests, threads=4)
    assert results == [[s.upper() for s in r] for r in requests]
    assert sum(seen) == 30 and len(seen) < len(requests)


@pytest.mark.parametrize("make", [torch.ones, np.ones], ids=["torch", "numpy"])
def test_tensor_mode_cats_and_splits_by_tracked_sizes(make):
    calls: list[int] = []

    def double(batch):
        calls.append(int(batch.shape[0]))
        return batch * 2

    requests = [make((n, 3)) * i for i, n in enumerate([1, 2, 3, 1, 4, 2], start=1)]
    with BatchCoordinator(double, mode="tensor", max_batch_size=64, max_wait_ms=30) as coordinator:
        results = run_threads(coordinator, requests, threads=6)
    for request, result in zip(requests, results, strict=True):
        assert tuple(result.shape) == tuple(request.shape)
        assert float(abs(result - request * 2).max()) == 0
    assert sum(calls) == sum(r.shape[0] for r in requests)


def test_an_exception_reaches_only_the_caller_whose_input_caused_it():
    def invert(batch: list[int]) -> list[float]:
        time.sleep(0.005)
        if 0 in batch:
            raise ZeroDivisionError("bad input 0")
        return [1 / x for x in batch]

    coordinator = BatchCoordinator(invert, mode="scalar", max_batch_size=16, max_wait_ms=30)
    futures = [coordinator.submit(x) for x in [1, 2, 0, 4]]
    assert futures[0].result(5) == 1.0
    assert futures[1].result(5) == 0.5
    with pytest.raises(ZeroDivisionError, match="bad input 0"):
        futures[2].result(5)
    assert futures[3].result(5) == 0.25
    coordinator.shutdown()


def test_wrong_result_count_is_an_error_not_a_hang():
    with BatchCoordinator(lambda batch: [], mode="scalar", max_wait_ms=30) as coordinator:
        futures = [coordinator.submit(x) for x in range(3)]
        for future in futures:
            with pytest.raises(ValueError, match="returned 0 results for 1 inputs"):
                future.result(5)


def test_shutdown_runs_queued_requests_then_refuses_new_ones():
    gate = threading.Event()

    def slow(batch: list[int]) -> list[int]:
        gate.wait(5)
        return batch

    coordinator = BatchCoordinator(slow, mode="scalar", max_batch_size=1, max_wait_ms=0)
    futures = [coordinator.submit(x) for x in range(3)]
    stopper = threading.Thread(target=coordinator.shutdown)
    stopper.start()
    gate.set()
    stopper.join(5)
    assert [f.result(5) for f in futures] == [0, 1, 2]
    with pytest.raises(CoordinatorClosed):
        coordinator.submit(9)


def test_a_dying_coordinator_thread_fails_waiting_callers_instead_of_deadlocking():
    started, queued_behind = threading.Event(), threading.Event()

    def fatal(batch: list[int]) -> list[int]:
        started.set()
        queued_behind.wait(5)
        raise SystemExit("the model crashed the interpreter thread")

    coordinator = BatchCoordinator(fatal, mode="scalar", max_batch_size=1, max_wait_ms=0)
    first = coordinator.submit(1)
    assert started.wait(5)
    queued = [coordinator.submit(x) for x in (2, 3)]
    queued_behind.set()
    for future in [first, *queued]:
        with pytest.raises(CoordinatorClosed, match="died"):
            future.result(5)
    with pytest.raises(CoordinatorClosed):
        coordinator.submit(4)


def test_a_dead_worker_thread_does_not_block_the_others():
    with BatchCoordinator(lambda b: [x + 1 for x in b], mode="scalar", max_wait_ms=20, max_clients=3) as coordinator:

        def dies() -> None:
            coordinator.submit(100)  # submits and ends without ever waiting for its result

        dead = threading.Thread(target=dies)
        dead.start()
        dead.join(5)
        assert run_threads(coordinator, [1, 2], threads=2) == [2, 3]


def test_full_house_of_clients_dispatches_without_waiting_out_max_wait():
    """With a minute of max_wait, only dispatching at max_clients answers within run()'s 10 s timeout."""
    sizes: list[int] = []

    def echo(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        return batch

    with BatchCoordinator(echo, mode="scalar", max_wait_ms=60_000, max_clients=4) as coordinator:
        assert run_threads(coordinator, [1, 2, 3, 4], threads=4) == [1, 2, 3, 4]
    assert sizes == [4]


def test_cancelled_requests_are_skipped():
    gate = threading.Event()
    seen: list[list[int]] = []

    def record(batch: list[int]) -> list[int]:
        gate.wait(5)
        seen.append(list(batch))
        return batch

    with BatchCoordinator(record, mode="scalar", max_batch_size=1, max_wait_ms=0) as coordinator:
        first = coordinator.submit(1)
        second = coordinator.submit(2)
        assert second.cancel()
        gate.set()
        assert first.result(5) == 1
    assert [2] not in seen


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        BatchCoordinator(lambda b: b, mode="matrix")  # type: ignore[arg-type]
    with BatchCoordinator(lambda b: b, mode="list") as coordinator, pytest.raises(TypeError, match="sequences"):
        coordinator.submit(3)
