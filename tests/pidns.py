"""Run a command as PID 1 of a PID namespace of its own, as a container runs its service.

``unshare --pid --fork --mount-proc`` (util-linux) needs root or unprivileged user namespaces;
where it is not permitted, tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path

import pytest


@cache
def unshare_refusal() -> str | None:
    """Why PID namespaces cannot be made here; None when they can."""
    if shutil.which("unshare") is None:
        return "no unshare program (util-linux) on this machine"
    try:
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if done.returncode != 0 or done.stdout.strip() != "1":
        return f"unshare --pid is not permitted here: {done.stderr.strip() or done.stdout}"
    return None


def need_pid_namespaces() -> None:
    reason = unshare_refusal()
    if reason is not None:
        pytest.skip(f"needs a PID namespace to run diplobot as PID 1: {reason}")


def as_pid_1(command: list[str]) -> list[str]:
    """``command`` as PID 1 of a new PID namespace (with its own /proc); killed with SIGKILL
    if the ``unshare`` process in front of it dies."""
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *command]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def pid_1_of(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> int:
    """The pid, as this process sees it, of the PID 1 that ``as_pid_1`` started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _parent(int(entry)) == proc.pid:
                return int(entry)
        time.sleep(0.02)
    raise AssertionError(f"no child of unshare ({proc.pid}) after {timeout} s")


def kill_pid_1(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGKILL the namespace's PID 1 itself (not ``unshare``), and wait until it is gone."""
    os.kill(pid_1_of(proc), signal.SIGKILL)
    proc.wait(10)


def stop_pid_1(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> int:
    """SIGTERM to PID 1 itself, as ``docker stop`` sends it (``unshare`` 2.38 blocks SIGTERM
    and does not pass it on); its exit code, which ``unshare`` returns as its own."""
    os.kill(pid_1_of(proc), signal.SIGTERM)
    return proc.wait(timeout)
