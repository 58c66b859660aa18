"""A real PgBouncer (transaction pooling) in front of the embedded test server.

The server trusts local socket connections, so PgBouncer trusts its clients too and logs in to
the server over that socket as the same user. PgBouncer refuses to run as root; as root it is
started with `-u` as the owner of the server's socket directory, the one user sure to reach it.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: Debian installs it in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
START_TIMEOUT_S = 30
MISSING = "pgbouncer is not installed (Debian: apt-get install pgbouncer); .ci/run installs it"


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer", path=SEARCH_PATH)


@dataclass
class PgBouncer:
    process: subprocess.Popen[str]
    port: int
    log: list[str]

    def url_for(self, database_url: str) -> str:
        """The same database and user as `database_url`, reached through this PgBouncer."""
        params = conninfo_to_dict(database_url)
        return make_conninfo(host="127.0.0.1", port=str(self.port), dbname=params["dbname"], user=params["user"])

    def warm(self, database_url: str, connections: int = 4) -> None:
        """Make PgBouncer open `connections` server connections to the database, as a busy pooler has.

        With server_round_robin the next transactions then rotate over them, so anything that
        outlives a transaction is seen to break every time, not only under load.
        """
        clients = [psycopg.connect(self.url_for(database_url)) for _ in range(connections)]
        try:
            for client in clients:
                client.execute("SELECT 1")  # holds a server connection until the transaction ends
            for client in clients:
                client.commit()  # a transaction left open would make PgBouncer drop its connection
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(server_url: str, port: int, workdir: Path) -> Path:
    server = conninfo_to_dict(server_url)
    userlist = workdir / "userlist.txt"
    userlist.write_text(f'"{server["user"]}" ""\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={server["host"]} port={server.get("port") or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {userlist}
pool_mode = transaction
default_pool_size = 40
max_client_conn = 500
; a busy pooler hands any of its server connections to any transaction: so does this one
server_round_robin = 1
"""
    )
    return ini


def _identity(server_url: str) -> list[str]:
    """`-u OWNER` when running as root (PgBouncer will not), nothing otherwise."""
    if os.geteuid() != 0:
        return []
    socket_dir = Path(conninfo_to_dict(server_url)["host"])
    return ["-u", pwd.getpwuid(socket_dir.stat().st_uid).pw_name]


def start_pgbouncer(binary: str, server_url: str, workdir: Path) -> PgBouncer:
    """Start PgBouncer on a free port and return once it says it is up."""
    failure = ""
    for _ in range(3):  # the free port may be taken between the probe and PgBouncer's bind
        port = _free_port()
        ini = _config(server_url, port, workdir)
        process = subprocess.Popen(
            [binary, *_identity(server_url), str(ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        log: list[str] = []
        threading.Thread(target=_pump, args=(process, lines, log), daemon=True).start()
        while (line := lines.get(timeout=START_TIMEOUT_S)) is not None:
            if "process up" in line:
                return PgBouncer(process, port, log)
        process.wait()
        failure = "".join(log)
    raise RuntimeError(f"pgbouncer did not start: {failure}")


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None], log: list[str]) -> None:
    """Keep reading PgBouncer's log (a full pipe would stall it); None marks its end."""
    assert process.stderr is not None
    for line in process.stderr:
        log.append(line)
        lines.put(line)
    lines.put(None)
