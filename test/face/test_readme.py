"""The README's Python samples run as written, and its first screen keeps its two commands."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

RULES = "all"  # every business rule on (see conftest.business_rules)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.M | re.S)


def test_the_first_screen_keeps_its_two_commands():
    first_screen = "\n".join(README.splitlines()[:20])
    assert "    pip install . && python -m pyuftp demo\n" in first_screen
    assert "    pip install '.[test,peer]' && python -m pytest -q test\n" in first_screen


def test_there_are_samples_to_run():
    assert len(BLOCKS) >= 3
    assert any("create_message" in block for block in BLOCKS)
    assert any("ShapeshifterAgrService" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_sample_runs_as_written(index, tmp_path):
    code = BLOCKS[index]
    if "await " in code and "asyncio.run(" not in code:
        pytest.skip("a fragment (await outside of a coroutine): shown, not a program")
    assert not re.search(r"^async with", code, re.M), "a top-level async with cannot run"
    script = tmp_path / f"readme_{index}.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    if "ShapeshifterAgrService" in code:
        assert done.stdout.strip().endswith("Accepted"), done.stdout


def test_the_sending_sample_says_where_a_service_listens():
    text = README[README.index("## Sending and receiving"):]
    assert "127.0.0.1" in text and "8080" in text and "/shapeshifter/api/v3/message" in text
    assert "service of its own" in text


def test_readme_tells_how_to_build_the_docs():
    assert "sphinx-build -W -n -b html docs docs/_build/html" in README


def test_no_xsd_validation_claim_for_create():
    assert "create (check, render, XSD-validate)" not in README
