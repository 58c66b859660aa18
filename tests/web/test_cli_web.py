"""`photodb web` as a user starts it: a port already in use is one line and exit 2, before any
address is printed (the address carries the secret, so it is never printed for a server that
does not run)."""

from __future__ import annotations

import socket

from tests.cli import PHOTODB, cli_env, run_command


def test_a_second_photodb_web_on_a_busy_port_exits_with_one_line_and_prints_no_address(tmp_path, database_url):
    with socket.socket() as first:  # the first server's socket
        first.bind(("127.0.0.1", 0))
        first.listen()
        port = first.getsockname()[1]
        result = run_command([PHOTODB, "web", "--port", str(port)], env=cli_env(tmp_path, database_url), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "http://" not in result.stdout + result.stderr and "token" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "Traceback" not in result.stderr


def test_help_says_how_the_page_is_opened_and_what_a_busy_port_does(tmp_path):
    text = " ".join(run_command([PHOTODB, "web", "--help"], env=cli_env(tmp_path, None)).stdout.split())
    assert "?token=" in text and "403" in text and "exit 2" in text
