"""Autobahn TestSuite cases (via kosoku) against Herald's --echo endpoint, without compression."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

OK_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}
OK_CLOSE = {"OK", "INFORMATIONAL", "UNIMPLEMENTED"}


def kosoku_bin():
    path = Path(sys.executable).parent / "kosoku"
    if not path.exists():
        pytest.fail(f"kosoku not installed next to {sys.executable} (pip install kosoku)")
    return path


def failing_cases(index):
    """Lines describing the cases whose verdicts are not acceptable, sorted by case id."""
    failures = []
    total = 0
    for agent, cases in index.items():
        for case_id, result in cases.items():
            total += 1
            if result["behavior"] not in OK_BEHAVIOR or result["behaviorClose"] not in OK_CLOSE:
                failures.append((case_id, f"{case_id}: behavior={result['behavior']} "
                                          f"behaviorClose={result['behaviorClose']} "
                                          f"remoteCloseCode={result.get('remoteCloseCode')}"))
    failures.sort(key=lambda f: [int(p) for p in f[0].split(".")])
    return [line for _, line in failures], total


def test_autobahn_echo(start_herald, tmp_path):
    # Autobahn's 9.x cases send messages up to 16 MiB and expect them echoed whole.
    srv = start_herald("--max-message", "20m", "--max-outbound", "64m")
    outdir = tmp_path / "autobahn"
    done = subprocess.run(
        [str(kosoku_bin()), f"ws://127.0.0.1:{srv.port}/echo", "-x", "12.*", "-x", "13.*",
         "-o", str(outdir)],
        capture_output=True, text=True, timeout=900)
    index_file = outdir / "index.json"
    assert index_file.exists(), f"kosoku wrote no index.json (exit {done.returncode}):\n" \
                                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    failures, total = failing_cases(json.loads(index_file.read_text()))
    assert total >= 250, f"only {total} cases ran"
    assert not failures, (f"{len(failures)} of {total} Autobahn cases failed "
                          f"(reports in {outdir}):\n" + "\n".join(failures))
    assert srv.proc.poll() is None, "herald died during the Autobahn run"
