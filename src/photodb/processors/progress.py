"""The progress display's numbers: database counts read rarely, this process's own finishes in between.

Counting a large queue is a scan; twice a second it would cost a connection's worth of work on
a big library. The counts are read at most once a second, and less often when the query is slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from photodb.database.models import StageCounts

#: The progress display re-reads the counts at most this often, and less often when the count
#: query is slow (it may take at most a tenth of one connection's time); in between it adds
#: what this process finished itself.
PROGRESS_MIN_INTERVAL = 1.0
PROGRESS_QUERY_SHARE = 0.1


class ProgressPoller:
    """Decides when the progress display may query the database again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.next_at = 0.0

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def polled(self, started: float) -> None:
        """Called after a count query that began at `started`."""
        now = self.clock()
        self.next_at = now + max(PROGRESS_MIN_INTERVAL, (now - started) / PROGRESS_QUERY_SHARE)


def with_own_progress(
    last_counts: dict[str, StageCounts], finished: dict[tuple[str, str], int], at_poll: dict[tuple[str, str], int]
) -> dict[str, StageCounts]:
    """The last counts read, moved on by what this process settled since they were read."""
    counts = {}
    for stage, last in last_counts.items():

        def since_poll(status: str, stage: str = stage) -> int:
            return finished.get((stage, status), 0) - at_poll.get((stage, status), 0)

        done, failed, skipped = since_poll("completed"), since_poll("failed"), since_poll("skipped")
        moved = done + failed + skipped
        from_processing = min(moved, last.processing)
        counts[stage] = StageCounts(
            pending=max(0, last.pending - (moved - from_processing)),
            processing=last.processing - from_processing,
            completed=last.completed + done,
            failed=last.failed + failed,
            blocked=last.blocked,
            skipped=last.skipped + skipped,
        )
    return counts
