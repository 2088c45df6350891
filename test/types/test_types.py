"""mypy --strict on pyuftp/: the type hints that users' editors and checkers read are right."""
from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_passes_on_the_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(ROOT / "pyuftp")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
