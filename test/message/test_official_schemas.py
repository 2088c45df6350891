"""Without the official schemas the tests that need them skip locally, saying how to provide
them, and fail in CI: a run that checked nothing against the referee must not pass there."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
PROBE = '''
import pytest

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each
def test_needs_the_schemas(official_schema):
    official_schema("3.1.0")
'''


def run_without_schemas(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    conftest = (HERE / "conftest.py").read_text().replace(
        'SPEC = Path(__file__).resolve().parent.parent.parent / "shared" / "uftp-spec" / "xsd"',
        f'SPEC = Path({str(tmp_path / "nowhere")!r})')
    (tmp_path / "conftest.py").write_text(conftest)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(HERE.parent)}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)


def test_missing_schemas_skip_locally_with_the_way_to_provide_them(tmp_path):
    result = run_without_schemas(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout and "shared/uftp-spec" in result.stdout


def test_missing_schemas_fail_in_ci(tmp_path):
    result = run_without_schemas(tmp_path, ci=True)
    assert result.returncode == 1 and "1 error" in result.stdout, result.stdout[-2000:]
    assert "CI must check against the official schemas" in result.stdout
