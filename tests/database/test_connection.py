"""The Database handle against the real server: the connection headroom check of process-local."""

from __future__ import annotations

import re


def test_connection_shortage_compares_a_run_with_the_servers_free_slots(db):
    assert db.connection_shortage(1) is None
    with db.connection() as conn:
        limit = conn.execute("SELECT current_setting('max_connections')::int").fetchone()[0]
    message = db.connection_shortage(limit + 5)
    assert message is not None
    found = re.search(r"open (\d+) database connections but the server has (\d+) free \(max_connections (\d+)", message)
    assert found is not None
    needed, free, reported_limit = map(int, found.groups())
    assert needed == limit + 5 and reported_limit == limit and 0 < free < limit
    assert db.connection_shortage(free) is None
    assert db.connection_shortage(free + 1) is not None
    assert "lower --parallel or raise max_connections" in message
