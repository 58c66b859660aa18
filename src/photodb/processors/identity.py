"""Who holds a claim: `host@machine:pid:start/thread`, precise enough to tell a dead holder from a live one.

A pid only means something on the machine (and pid namespace) it came from, and host names
repeat across hosts (containers, cloned VMs, default names). The machine part is derived from the
kernel's boot id and this process's pid namespace, so two hosts that share a host name, or two
containers on one kernel, never take each other's live workers for dead ones.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = Path("/proc/self/ns/pid")


@cache
def machine_id() -> str:
    """A short id of this kernel boot and pid namespace (elsewhere: network node and boot time)."""
    try:
        seed = f"{_BOOT_ID.read_text().strip()}:{os.stat(_PID_NAMESPACE).st_ino}"
    except OSError:
        seed = f"{uuid.getnode():x}:{int(psutil.boot_time())}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    machine: str
    pid: int
    started_ms: int

    def __str__(self) -> str:
        return f"{self.host}@{self.machine}:{self.pid}:{self.started_ms}"

    @property
    def machine_prefix(self) -> str:
        """What every holder name of this machine starts with."""
        return f"{self.host}@{self.machine}:"

    def holder(self, thread: int) -> str:
        return f"{self}/{thread}"

    @classmethod
    def current(cls) -> ProcessIdentity:
        me = psutil.Process()
        return cls(socket.gethostname(), machine_id(), me.pid, int(me.create_time() * 1000))

    @classmethod
    def parse(cls, holder: str) -> ProcessIdentity | None:
        """The process of a holder name; None for names of another format (older versions)."""
        process, _, _ = holder.partition("/")
        try:
            rest, pid, started = process.rsplit(":", 2)
            host, at, machine = rest.rpartition("@")
            if not at:
                return None
            return cls(host, machine, int(pid), int(started))
        except ValueError:
            return None

    def is_alive_here(self) -> bool:
        """Whether this process runs on this machine now (a recycled pid has another start time)."""
        if self.machine != machine_id():
            raise ValueError(f"{self} belongs to another machine")
        try:
            return int(psutil.Process(self.pid).create_time() * 1000) == self.started_ms
        except psutil.Error:
            return False
