"""Who this process is, for leases it holds in the database, and whether another holder lives.

A holder is `host:pid:start`, the start being the process's start time in clock ticks since boot
(Linux `/proc`). After `kill -9` and a restart, the new process sees that a lease names a process
of its own host that no longer runs (no such pid, or a pid reused by another start time), and takes
the lease back at once instead of waiting for it to run out.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@functools.cache
def holder_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def dead_local_holders(holders: Iterable[str | None]) -> set[str]:
    """The holders among `holders` that are processes of this host certainly gone; each distinct
    holder is looked up in /proc once, however many rows name it."""
    return {holder for holder in set(holders) if holder and is_dead_local_holder(holder)}


def is_dead_local_holder(holder: str | None) -> bool:
    """True only when `holder` is a process of this host that is certainly gone."""
    if not holder:
        return False
    parts = holder.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, start = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if holder == holder_id():
        return False
    current = _start_ticks(int(pid_text))
    return current is None or (start != "0" and current != start)
