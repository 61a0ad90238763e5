"""Many WebSocket clients share a handful of Redis connections (one subscriber link per loop)."""

import asyncio
import json
import random
import time

from websockets.asyncio.client import connect

from conftest import connected_clients, http_json, open_subscriber, publish, recv_json, wait_until

N_CLIENTS = 1000
BATCH = 100
LOOPS = 2


def pubsub_channels(redis, pattern):
    return {line for line in redis.cli("PUBSUB", "CHANNELS", pattern).splitlines() if line}


def numsub(redis, channels):
    lines = redis.cli("PUBSUB", "NUMSUB", *channels).splitlines()
    return dict(zip(lines[0::2], (int(x) for x in lines[1::2])))


async def open_client(port, channel):
    ws = await connect(f"ws://127.0.0.1:{port}/subscribe?channel={channel}", open_timeout=30,
                       ping_interval=None, compression=None, max_size=None)
    try:
        answer = json.loads(await asyncio.wait_for(ws.recv(), 15))
    except BaseException:
        await ws.close()
        raise
    assert answer == {"type": "subscribed", "kind": "channel", "names": [channel]}, answer
    return ws


async def next_message(ws, timeout):
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return None


def test_thousand_clients_share_few_redis_connections(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=LOOPS)
    prefix = f"mx{random.randrange(10**6)}"
    channels = [f"{prefix}-{i}" for i in range(N_CLIENTS)]

    async def scenario():
        clients = []
        try:
            for start in range(0, N_CLIENTS, BATCH):
                batch = channels[start:start + BATCH]
                clients += await asyncio.gather(*(open_client(herald.port, c) for c in batch))

            # Redis sees Herald's few links (+1 for redis-cli itself), not 1,000 clients.
            limit = 2 * LOOPS + 2 + 1
            count = connected_clients(redis)
            assert count <= limit, f"{count} Redis connections for {N_CLIENTS} WebSocket clients"

            assert pubsub_channels(redis, prefix + "-*") == set(channels)
            counts = numsub(redis, channels)
            assert set(counts.values()) == {1}, {c: n for c, n in counts.items() if n != 1}

            sample = random.Random(7).sample(range(N_CLIENTS), 50)
            for i in sample:
                status, _, answer = http_json("POST", f"{herald.base_url}/publish/{channels[i]}",
                                              f"for client {i}")
                assert status == 200 and answer == {"channel": channels[i], "receivers": 1}, answer
            got = await asyncio.gather(*(next_message(clients[i], 10) for i in sample))
            for i, raw in zip(sample, got):
                assert raw is not None, f"client {i} received nothing"
                assert json.loads(raw) == {"type": "message", "channel": channels[i],
                                           "data": f"for client {i}"}
            # Nobody received anything else.
            stray = await asyncio.gather(*(next_message(ws, 0.5) for ws in clients))
            stray = [(channels[i], m) for i, m in enumerate(stray) if m is not None]
            assert stray == [], f"unexpected deliveries: {stray[:5]}"
        finally:
            for start in range(0, len(clients), BATCH):
                await asyncio.gather(*(ws.close() for ws in clients[start:start + BATCH]),
                                     return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 120))

    # The last local subscriber of each channel left: Herald unsubscribes from Redis.
    wait_until(lambda: not pubsub_channels(redis, prefix + "-*"), timeout=10,
               what="PUBSUB CHANNELS to become empty after all clients closed")
    assert connected_clients(redis) <= 2 * LOOPS + 2 + 1
    assert herald.proc.poll() is None


def test_first_subscriber_leaving_keeps_the_channel_for_the_other(start_redis, start_herald):
    """With one loop both clients share one Redis subscription; it lives until the last leaves."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    channel = f"shared{random.randrange(10**6)}"
    first = open_subscriber(herald, channels=[channel])
    second = open_subscriber(herald, channels=[channel])
    try:
        assert numsub(redis, [channel]) == {channel: 1}
        assert publish(herald, channel, "one") == {"channel": channel, "receivers": 1}
        for ws in (first, second):
            assert recv_json(ws) == {"type": "message", "channel": channel, "data": "one"}

        first.close()
        time.sleep(0.3)  # give a wrong UNSUBSCRIBE the chance to happen
        assert numsub(redis, [channel]) == {channel: 1}
        assert publish(herald, channel, "two") == {"channel": channel, "receivers": 1}
        assert recv_json(second) == {"type": "message", "channel": channel, "data": "two"}

        second.close()
        wait_until(lambda: numsub(redis, [channel]) == {channel: 0}, timeout=5,
                   what=f"Redis to drop the subscription to {channel}")
    finally:
        first.close()
        second.close()


def test_pattern_and_shard_subscriptions_released(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    pattern, shard = f"pp{random.randrange(10**6)}-*", f"sh{random.randrange(10**6)}"
    ws = open_subscriber(herald, patterns=[pattern], shards=[shard])
    try:
        assert redis.cli("PUBSUB", "NUMPAT").strip() == "1"
        assert redis.cli("PUBSUB", "SHARDCHANNELS").split() == [shard]
    finally:
        ws.close()
    wait_until(lambda: redis.cli("PUBSUB", "NUMPAT").strip() == "0"
               and redis.cli("PUBSUB", "SHARDCHANNELS").split() == [], timeout=5,
               what="Redis to drop the pattern and shard subscriptions")
