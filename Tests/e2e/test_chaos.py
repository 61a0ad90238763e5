"""The short chaos run (issue 12, item 4): scripts/chaos/chaos.py with CHAOS_SHORT=1.

One run (about 45 s) of a Redis primary and replica, three sentinels and two Heralds on
loopback, clients of every kind, and one fault of each kind: primary killed (failed over, or
restarted on its port when this Herald has no sentinel support), primary paused past the link
timeout, a Herald killed and restarted, every client cut mid-frame. The tests below read its
results.json: they are exact about losses (an acknowledged write that never arrived, a pub/sub
loss no gap covered) and only loose about timing (something arrived after each fault).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HERALD_BIN, REPO, require_binary

SCRIPT = REPO / "scripts" / "chaos" / "chaos.py"
RUN_TIMEOUT = 300


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    require_binary()
    out = tmp_path_factory.mktemp("chaos")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "CHAOS_"))}
    env.update({"HERALD_BIN": str(HERALD_BIN), "CHAOS_SHORT": "1", "CHAOS_OUT": str(out)})
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, cwd=REPO)
    results_file = Path(out) / "results.json"
    if not results_file.exists():
        pytest.fail(f"the chaos run wrote no results (exit {done.returncode}):\n"
                    f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    results = json.loads(results_file.read_text())
    results["_output"] = done.stdout[-6000:] + done.stderr[-3000:]
    results["_rc"] = done.returncode
    return results


def _context(results):
    return f"\nrun output:\n{results['_output']}"


def test_mode_is_reported(chaos):
    mode = chaos["mode"]
    assert mode["redis"] in ("sentinel", "direct"), mode
    assert "mode:" in chaos["_output"] and "replicas" in chaos["_output"], _context(chaos)
    assert [f["kind"] for f in chaos["faults"]] == [
        "client_cut", "primary_kill", "primary_pause", "herald_kill"], _context(chaos)


def test_stream_readers_read_every_acknowledged_entry_in_order(chaos):
    for r in chaos["stream"]:
        assert r["acked"] > 0, r
        assert r["missing_count"] == 0, f"{r['client']} never read {r['missing']}{_context(chaos)}"
        assert r["out_of_order"] == 0 and not r["wrong_payload"], r
    assert chaos["stream_same_payload_two_ids"] == [], chaos["stream_same_payload_two_ids"]


def test_pubsub_losses_are_all_covered_by_gaps(chaos):
    for kind in ("pubsub", "pattern"):
        for r in chaos[kind]:
            assert r["received"] > 0, r
            assert r["lost_without_gap"] == [], \
                f"{kind} {r['client']} lost {r.get('lost_context')} with no gap{_context(chaos)}"
            assert r["duplicates"] == 0 and r["out_of_order"] == 0, r
    # Redis went away twice under live subscriptions: Herald said so.
    assert sum(r["herald_gaps"] for r in chaos["pubsub"] + chaos["pattern"]) > 0, _context(chaos)


def test_groups_and_queues_process_every_acknowledged_item(chaos):
    for kind in ("group", "queue"):
        r = chaos[kind]
        assert r["acked"] > 0, r
        assert r["missing_count"] == 0, f"{kind}: never processed {r['missing']}{_context(chaos)}"


def test_every_kind_delivers_after_every_fault_and_readyz_tells(chaos):
    kinds = {"pubsub", "pattern", "stream", "group", "queue"}
    heralds = {"herald-a", "herald-b"}
    for f in chaos["faults"]:
        assert set(f["by_kind"]) == kinds, f"after {f['kind']}: deliveries only to {f}"
        # A killed primary drops every link until the promoted replica (or the restarted
        # primary) takes them: /readyz is red meanwhile. So is a paused one when Herald points
        # at it directly (the pause outlasts the links' reply timeout). Under Sentinel a pause
        # longer than down-after-milliseconds is a failover, and the links move to the new
        # master within milliseconds of +switch-master: too brief for a poller to see; the
        # deliveries after it (above) are what counts there.
        if f["kind"] == "primary_kill" or (f["kind"] == "primary_pause" and chaos["mode"]["redis"] == "direct"):
            assert set(f["readyz_red"]) == heralds, f"/readyz stayed green during {f}"
        if f["kind"] == "herald_kill":
            assert f["readyz_red"], f


def test_heralds_return_to_their_baseline(chaos):
    for h in chaos["heralds"]:
        assert h["ok"], f"fds or RSS did not come back: {h}"
    assert chaos["drained"], _context(chaos)


def test_run_passes_as_a_whole(chaos):
    assert chaos["ok"] and chaos["_rc"] == 0, _context(chaos)
