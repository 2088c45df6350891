"""Run the example DSO, AGR and CRO as three processes on 127.0.0.1 and wait for them.

    python examples/run_all.py

The parties exchange their public keys and URLs through files in a new temporary folder,
then trade: the DSO and the AGR register with the CRO, the AGR tests the line to the DSO,
the DSO requests flexibility, the AGR offers it, the DSO orders it, and both query the CRO.
Every request is answered by a ``...Response`` from the other process. Exits 0 when all
three processes do, that is when every request got an Accepted answer.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIMIT = 90.0  # seconds for the whole run


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="uftp-example-") as folder:
        processes = {
            role: subprocess.Popen([sys.executable, str(HERE / f"{role.lower()}.py"), folder])
            for role in ("CRO", "DSO", "AGR")
        }
        deadline = time.monotonic() + LIMIT
        codes = {}
        for role, process in processes.items():
            try:
                codes[role] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[role] = None
        for role, process in processes.items():
            if codes[role] is None:
                process.kill()
                process.wait()
        print("exit codes:", ", ".join(f"{role} {code}" for role, code in codes.items()))
        return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
