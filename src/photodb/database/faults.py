"""Which database errors are a passing blip, and how long to keep retrying them.

A server restart, a failover, a pooler restart or `pg_terminate_backend` closes every connection;
a serialization failure or deadlock aborts one transaction. Both go away when the statement is
tried again on a fresh connection, so callers retry them with backoff. Every thread of a process
shares one outage clock: the run gives up when nothing has reached the database for the deadline,
however the waiting is split across threads and nested retries.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

log = logging.getLogger(__name__)

T = TypeVar("T")

#: admin shutdown, crash shutdown, cannot connect now (starting/stopping), too many connections,
#: serialization failure, deadlock; class 08 (connection exception) is matched by prefix.
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
_PASSWORD = re.compile(r"(password\s*=\s*)\S+|(://[^:/@\s]+:)[^@\s]+(@)", re.IGNORECASE)


class DatabaseUnreachable(RuntimeError):
    """Transient errors lasted past the deadline; the message is one line without secrets."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"database unreachable for {seconds:g} s: {reason}")
        self.seconds = seconds
        self.reason = reason


def is_transient(error: BaseException) -> bool:
    """True for errors that a retry on a fresh connection can cure (also when wrapped by a stage)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnreachable):
            return False
        if isinstance(current, PoolTimeout):
            return True
        if isinstance(current, psycopg.OperationalError):
            state = current.sqlstate
            if state is None or state.startswith("08") or state in TRANSIENT_SQLSTATES:
                return True
        current = current.__cause__ or current.__context__
    return False


def describe_error(error: BaseException) -> str:
    """The server's message, else the first line of the error, passwords masked: what a user needs to see."""
    primary = error.diag.message_primary if isinstance(error, psycopg.Error) else None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = primary or (lines[0] if lines else type(error).__name__)
    return _PASSWORD.sub(lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(2)}***{m.group(3)}", text)


class OutageClock:
    """When the database was last reached by this process, and whether the run has given up."""

    def __init__(self, deadline_seconds: float) -> None:
        self.deadline_seconds = deadline_seconds
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self.give_up = threading.Event()

    def reached(self) -> None:
        if self._failing_since is not None:
            with self._lock:
                self._failing_since = None

    def failed(self) -> float:
        """Record a transient failure; return how long the database has been unreachable."""
        now = time.monotonic()
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
            return now - self._failing_since

    def retrying(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation`, retrying transient errors with jittered exponential backoff.

        Gives up with DatabaseUnreachable once the outage (shared by every thread) or this call's
        own retries last past the deadline, or at once when the run is stopping.
        """
        first_failure: list[float] = []
        last: list[BaseException] = []

        def should_stop(state: RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is not None and outcome.failed:
                last[:] = [outcome.exception()]  # type: ignore[list-item]
            now = time.monotonic()
            first_failure[:] = first_failure or [now]  # a long operation's own run time is no outage
            outage = self.failed()
            own = now - first_failure[0]
            return self.give_up.is_set() or max(outage, own) >= self.deadline_seconds

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("database blip during %s (%s); retrying", what, describe_error(error) if error else "?")

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=should_stop,
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.2),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            result = retrying(operation)
        except Exception as error:
            if is_transient(error):
                self.give_up.set()
                raise DatabaseUnreachable(self.deadline_seconds, describe_error(last[0] if last else error)) from None
            if isinstance(error, psycopg.Error):
                self.reached()  # the server answered, if only with an error
            raise
        self.reached()
        return result
