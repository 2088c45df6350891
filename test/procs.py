"""Helpers for tests that run pyuftp in processes of their own: a free port, a sender
process (crash_sender.py), and reading a child's output with a deadline."""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent  # test/: the helper scripts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sender(log: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # stderr (retry warnings, plenty of them while the DSO is down) goes to a file: a pipe
    # nobody reads would fill up and stall the sender.
    return subprocess.Popen([sys.executable, str(HERE / "crash_sender.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def read_line(process: subprocess.Popen, deadline: float) -> str:
    """The next line of the process's output, or '' once the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
        return ""
    return process.stdout.readline()
