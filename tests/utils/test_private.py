"""What PhotoDB makes under PHOTODB_HOME and IMG_PATH is its owner's only: a real process-local run
on photos leaves folders 0700 and files 0600 (normalized PNGs, the log), whatever the umask, and
tightens an IMG_PATH an older version left readable to everyone."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from photodb.database.embedded import ROOT_HOME_MODE, EmbeddedPostgres
from photodb.utils.private import private_dir, write_private
from tests.cli import cli_env, process_local
from tests.imaging import make_library


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_a_process_local_run_leaves_only_owner_readable_folders_and_files(tmp_path, database_url):
    make_library(tmp_path / "lib", 3)
    images = tmp_path / "images"
    images.mkdir(mode=0o755)  # a library made before: its folder readable to everyone
    images.chmod(0o755)
    env = cli_env(tmp_path, database_url, LOG_FILE=str(tmp_path / "home" / "logs" / "photodb.log"))
    result = process_local(str(tmp_path / "lib"), "--stage", "normalize", "--stage", "metadata", env=env)
    assert result.returncode == 0, result.stderr
    made = modes(tmp_path / "home") | {f"images/{k}": v for k, v in modes(images).items()}
    assert sum(name.endswith(".png") for name in made) == 3 and "logs/photodb.log" in made
    for name, mode in made.items():
        is_dir = (tmp_path / "home" / name).is_dir() or (tmp_path / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), f"{name}: {oct(mode)}"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser")
def test_another_local_user_reads_nothing_a_run_wrote(tmp_path, database_url):
    make_library(tmp_path / "lib", 2)
    with tempfile.TemporaryDirectory(dir="/tmp") as reachable:  # pytest's tmp_path is 0700 itself
        shared = Path(reachable)
        shared.chmod(0o755)  # a folder other users may enter, as a home folder often is
        env = cli_env(shared, database_url, LOG_FILE=str(shared / "home" / "photodb.log"))
        result = process_local(str(tmp_path / "lib"), "--stage", "normalize", env=env)
        assert result.returncode == 0, result.stderr
        written = [p for p in shared.rglob("*") if p.is_file()]
        assert len(written) >= 3  # two PNGs and the log
        for path in written:
            as_nobody = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True)
            assert as_nobody.returncode != 0 and not as_nobody.stdout, path
        listing = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(shared / "images")], capture_output=True)
        assert listing.returncode != 0 and not listing.stdout


def test_a_folder_of_another_program_is_not_tightened_but_made_parents_are_private(tmp_path):
    shared = tmp_path / "var-log"
    shared.mkdir()
    shared.chmod(0o755)
    private_dir(shared, own=False)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    made = private_dir(shared / "photodb" / "deeper", own=False)
    assert stat.S_IMODE(made.stat().st_mode) == stat.S_IMODE(made.parent.stat().st_mode) == 0o700
    written = write_private(made / "x.bin", lambda out: out.write(b"x"))
    assert stat.S_IMODE(written.stat().st_mode) == 0o600 and written.read_bytes() == b"x"
    assert [p.name for p in made.iterdir()] == ["x.bin"]  # no temporary file left


@pytest.mark.timeout(300)
def test_the_embedded_servers_files_are_private_and_its_config_belongs_to_the_server(tmp_path):
    home = tmp_path / "home"
    server = EmbeddedPostgres(home)
    server.acquire()
    try:
        owner_only = [home / "pg-leases", *(home / "pg-leases").iterdir(), home / "embedded-postgres.lock"]
        mode_of = {path: stat.S_IMODE(path.stat().st_mode) for path in [home, *owner_only, server.pgdata]}
        config = server.pgdata / "photodb.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert config.stat().st_uid == server.pgdata.stat().st_uid  # the server can read its settings
    finally:
        server.release()
    assert mode_of.pop(home) == (ROOT_HOME_MODE if os.geteuid() == 0 else 0o700)
    assert mode_of.pop(server.pgdata) == 0o700
    assert {path.name: mode for path, mode in mode_of.items()} == {
        path.name: 0o700 if path.name == "pg-leases" else 0o600 for path in mode_of
    }
