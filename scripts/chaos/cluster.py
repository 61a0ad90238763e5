"""The chaos run's Redis Cluster (issue 12, item 5): three masters with one replica each.

Six cluster-enabled redis-servers (AOF fsynced on every write, cluster-node-timeout 2 s so a
replica takes over quickly) joined with `redis-cli --cluster create --cluster-replicas 1`, and
two Heralds given every node as a seed. Faults specific to a cluster:

  primary_kill   SIGKILL of the master owning the stream's slot; its replica is promoted
                 (CLUSTER FAILOVER is not asked: the cluster decides), then the killed node is
                 restarted from its nodes.conf and rejoins as a replica;
  primary_pause  SIGSTOP of a master for longer than Herald's link timeout (and the cluster's
                 node timeout, so its replica is promoted meanwhile), then SIGCONT;
  slot_migrate   a live slot (the one holding the stream, group, queue or sharded channel in
                 turn) moved to another master: SETSLOT IMPORTING/MIGRATING, MIGRATE of its keys,
                 SETSLOT NODE on every master.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import topology
from topology import REDIS_SERVER, Herald, free_port, log, resp_command, stop_process, wait_for

REDIS_CLI = "redis-cli"
NODE_TIMEOUT_MS = 2000


class ClusterNode:
    def __init__(self, name, workdir: Path):
        self.name = name
        self.port = free_port()
        self.bus_port = free_port()  # the default (port + 10000) may be out of range
        while self.bus_port == self.port:
            self.bus_port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        wait_for(lambda: resp_command(self.port, "PING", timeout=1) == "PONG", 15,
                 f"cluster node {self.name} on {self.port}")

    def cmd(self, *args, timeout=3.0):
        return resp_command(self.port, *args, timeout=timeout)

    def node_id(self):
        return self.cmd("CLUSTER", "MYID")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self):
        stop_process(self.proc)


class ClusterTopology:
    """Six nodes (3 masters + 3 replicas) and Heralds A and B seeded with every node."""

    sentinel_mode = False
    cluster_mode = True

    def __init__(self, workdir: Path, herald_bin: Path, loops=2):
        self.workdir = workdir
        self.nodes = [ClusterNode(f"n{i}", workdir) for i in range(1, 7)]
        url = ",".join(f"redis://127.0.0.1:{n.port}" for n in self.nodes)
        self.redis_url = url
        self.heralds = [Herald(n, herald_bin, workdir, free_port(), url, loops)
                        for n in ("herald-a", "herald-b")]

    def start(self):
        for n in self.nodes:
            n.start()
        create = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout[-2000:]!r}")
        self.wait_ok(60)
        for h in self.heralds:
            h.start()
        for h in self.heralds:
            h.wait_ready()
            h.baseline = h.measure()

    def live(self):
        return [n for n in self.nodes if n.alive()]

    def info_ok(self, node):
        info = node.cmd("CLUSTER", "INFO")
        return "cluster_state:ok" in info

    def wait_ok(self, timeout=60):
        """Every live node says ok, three masters serve every slot, and every master has a
        replica in sync."""
        def ok():
            live = self.live()
            if not all(self.info_ok(n) for n in live):
                return False
            masters = self.masters()
            if len(masters) != 3:
                return False
            for m in masters:
                info = m.cmd("INFO", "replication")
                if "connected_slaves:1" not in info or "state=online" not in info:
                    return False
            return True
        wait_for(ok, timeout, "the cluster to be whole (3 masters, each with a replica)")

    def masters(self):
        out = []
        for n in self.live():
            try:
                if n.cmd("ROLE")[0] == "master" and self.owns_slots(n):
                    out.append(n)
            except (OSError, RuntimeError):
                pass
        return out

    def owns_slots(self, node):
        my = node.node_id()
        for n in self.live():
            try:
                slots = n.cmd("CLUSTER", "SLOTS")
            except (OSError, RuntimeError):
                continue
            return any(len(r) > 2 and r[2][2] == my for r in slots)
        return False

    def owner(self, slot):
        """The node that serves `slot` now (as a live node's CLUSTER SLOTS says)."""
        for n in self.live():
            try:
                for r in n.cmd("CLUSTER", "SLOTS"):
                    if int(r[0]) <= slot <= int(r[1]):
                        port = int(r[2][1])
                        return next(x for x in self.nodes if x.port == port)
            except (OSError, RuntimeError, StopIteration):
                continue
        return None

    def keyslot(self, key):
        return int(self.live()[0].cmd("CLUSTER", "KEYSLOT", key))

    def stop(self):
        for h in self.heralds:
            h.stop()
        for n in self.nodes:
            stop_process(n.proc)


def migrate_slot(topo: ClusterTopology, slot):
    """Moves `slot`, keys and all, from its owner to another master while clients use it."""
    src = topo.owner(slot)
    dst = next(m for m in topo.masters() if m is not src)
    src_id, dst_id = src.node_id(), dst.node_id()
    dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while True:
        keys = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys, timeout=10)
        moved += len(keys)
    for m in [dst, src] + [m for m in topo.masters() if m not in (src, dst)]:
        m.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return src, dst, moved


class ClusterFaults:
    """Mixed into chaos.Chaos for a cluster: the Redis faults act on masters."""

    def __init__(self, topo: ClusterTopology, slots_by_key):
        self.topo = topo
        self.slots_by_key = slots_by_key  # key -> slot: the live slots to kill, pause, move
        self.migrate_turn = 0

    async def primary_kill(self, fault, sleep, to_thread):
        slot = self.slots_by_key["stream"]
        node = self.topo.owner(slot)
        node.kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            owner = await to_thread(self.topo.owner, slot)
            if owner is not None and owner is not node:
                break
            await sleep(0.1)
        promoted = self.topo.owner(slot)
        took = time.monotonic() - fault["t"]
        await to_thread(node.start)  # rejoins as a replica of the promoted node
        await to_thread(self.topo.wait_ok, 60)
        fault["detail"] = (f"master {node.name} of slot {slot} killed; replica "
                           f"{promoted.name if promoted else '?'} promoted after {took:.1f}s; "
                           f"{node.name} back as a replica")

    async def primary_pause(self, fault, sleep, to_thread, pause):
        slot = self.slots_by_key["group"]
        node = self.topo.owner(slot)
        os.kill(node.proc.pid, signal.SIGSTOP)
        await sleep(pause)
        os.kill(node.proc.pid, signal.SIGCONT)
        await to_thread(self.topo.wait_ok, 60)
        owner = self.topo.owner(slot)
        fault["detail"] = (f"master {node.name} of slot {slot} stopped for {pause:g} s; slot now "
                           f"on {owner.name if owner else '?'}")

    async def slot_migrate(self, fault, sleep, to_thread):
        names = ["stream", "queue", "group", "shard"]
        name = names[self.migrate_turn % len(names)]
        self.migrate_turn += 1
        slot = self.slots_by_key[name]
        src, dst, moved = await to_thread(migrate_slot, self.topo, slot)
        fault["detail"] = (f"slot {slot} ({name}) moved {src.name} -> {dst.name} with "
                           f"{moved} keys")


__all__ = ["ClusterTopology", "ClusterFaults", "migrate_slot", "topology", "log"]
