"""How much memory this process may still use, and sizes in words: for refusing, before any
work, what could not fit (a network too big to train, a model file too big to load).

The smallest of what limits the process: the memory the system has available
(``/proc/meminfo``'s MemAvailable, or ``os.sysconf``), a container's memory limit (cgroup v2 or
v1), and the address space left under ``ulimit -v`` (RLIMIT_AS) or ``ulimit -d`` (RLIMIT_DATA).
Each is read when it can be; one that cannot is left out. Standard library only.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass

UNKNOWN = 1 << 62  # no limit could be read: more than any estimate


@dataclass(frozen=True)
class MemoryLimit:
    """Bytes this process may still use, and what sets that bound (for messages)."""

    bytes: int
    what: str  # "available memory", "the ulimit -v limit", ...
    virtual: bool  # a limit on address space (ulimit -v), which counts more than used memory

    def describe(self) -> str:
        return f"{size_text(self.bytes)} ({self.what})"


def memory_limits() -> list[MemoryLimit]:
    """Every bound on the memory this process may still use that can be read here."""
    limits = []
    physical = _available_physical()
    if physical is not None:
        limits.append(MemoryLimit(physical, "available memory", False))
    container = _container_room()
    if container is not None:
        limits.append(MemoryLimit(container, "the container's memory limit", False))
    status = _own_status()
    for limit, field, what in (
        (resource.RLIMIT_AS, "VmSize", "the ulimit -v limit"),
        (resource.RLIMIT_DATA, "VmData", "the ulimit -d limit"),
    ):
        soft, _ = resource.getrlimit(limit)
        if soft != resource.RLIM_INFINITY and soft >= 0:
            used = status.get(field, 0)
            limits.append(MemoryLimit(max(0, soft - used), what, True))
    return limits


def memory_available() -> MemoryLimit:
    """The tightest of memory_limits() (``UNKNOWN`` bytes when none can be read)."""
    limits = memory_limits()
    if not limits:
        return MemoryLimit(UNKNOWN, "no limit found", False)
    return min(limits, key=lambda limit: limit.bytes)


def size_text(count: int) -> str:
    """A number of bytes as people write it: 512 MB, 3.4 GB, 1.2 TB (powers of 1000)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            value = count / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{count} bytes"


def _available_physical() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            match = re.search(r"^MemAvailable:\s+(\d+) kB", file.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _own_status() -> dict[str, int]:
    """This process's VmSize, VmData... from /proc/self/status, in bytes ({} elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return {}
    return {name: int(kb) * 1024 for name, kb in re.findall(r"^(Vm\w+):\s+(\d+) kB", text, re.M)}


def _container_room() -> int | None:
    """The room left under this process's cgroup memory limits (the tightest, up the tree)."""
    try:
        with open("/proc/self/cgroup", encoding="ascii", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2
            root, limit_name, usage_name = "/sys/fs/cgroup", "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # cgroup v1
            root = "/sys/fs/cgroup/memory"
            limit_name, usage_name = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        # The process's own group and every group above it, as far as this mount shows them.
        parts = [part for part in path.split("/") if part]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(root, *parts[:depth])
            room = _room_in(folder, limit_name, usage_name)
            if room is not None:
                rooms.append(room)
    return min(rooms) if rooms else None


def _room_in(folder: str, limit_name: str, usage_name: str) -> int | None:
    try:
        with open(os.path.join(folder, limit_name), encoding="ascii") as file:
            limit = file.read().strip()
        with open(os.path.join(folder, usage_name), encoding="ascii") as file:
            usage = int(file.read().strip())
    except (OSError, ValueError):
        return None
    if limit == "max" or not limit.isdigit() or int(limit) >= UNKNOWN:
        return None  # no limit (v1 writes a number near 2**63)
    return max(0, int(limit) - usage)
