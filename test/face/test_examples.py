"""examples/: the DSO, AGR and CRO scripts run as three real processes on 127.0.0.1 and
every request gets an Accepted answer, so that the examples cannot rot."""
from __future__ import annotations

import pytest

import re
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

RULES = "all"  # every business rule on (see conftest.business_rules)

ROOT = Path(__file__).resolve().parents[2]


def test_three_parties_trade_in_three_processes():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "run_all.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    answered = re.findall(r"^(\w+): (\S+) -> (\w+): Accepted$", done.stdout, re.M)
    assert {message_type for _, message_type, _ in answered} == {
        "DSOPortfolioUpdate", "AGRPortfolioUpdate", "TestMessage", "FlexRequest", "FlexOffer",
        "FlexOrder", "DSOPortfolioQuery", "AGRPortfolioQuery"}
    assert "exit codes: CRO 0, DSO 0, AGR 0" in done.stdout
    assert "127.0.0.1" in done.stdout


def test_every_party_script_says_how_to_run_it():
    for name in ("dso", "agr", "cro"):
        text = (ROOT / "examples" / f"{name}.py").read_text(encoding="utf-8")
        assert f"python examples/{name}.py FOLDER" in text
        assert " a AGR" not in text
