"""aio-pika's JsonRPC, the peer the AMQP bench (benches/amqp.rs) measures beside ours.

    python aio_pika_peer.py serve PROCEDURE TOPOLOGY   # an echo consumer; READY, then runs until stdin closes
    python aio_pika_peer.py call PROCEDURE CALLS IN_FLIGHT   # prints "<calls/s> <p50 us> <p99 us>"

Both on aio-pika's defaults (connect_robust, JsonRPC.create), as a user gets them. In the quorum
topology the procedure's queue is declared with the same arguments as ours (README, "AMQP").
The URL is AMQP_URL, else the local broker.
"""

import asyncio
import os
import sys
import time

import aio_pika
from aio_pika.patterns import JsonRPC

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f").split(",")[0]


async def echo(value):
    return value


async def serve(procedure, topology):
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    rpc = await JsonRPC.create(channel)
    if topology == "quorum":
        await rpc.register(procedure, echo, durable=True,
                           arguments={"x-queue-type": "quorum", "x-delivery-limit": 3})
    else:
        await rpc.register(procedure, echo)
    print("READY", flush=True)
    # Until the bench closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await connection.close()


async def call(procedure, calls, in_flight):
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    rpc = await JsonRPC.create(channel)
    value = "x" * 16
    for _ in range(200):  # warm up
        assert await rpc.call(procedure, kwargs={"value": value}) == value
    latencies = []

    async def caller(n):
        for _ in range(n):
            started = time.perf_counter()
            assert await rpc.call(procedure, kwargs={"value": value}) == value
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller(calls // in_flight) for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e6
    p99 = latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] * 1e6
    print(f"{len(latencies) / elapsed:.1f} {p50:.0f} {p99:.0f}", flush=True)
    await connection.close()


def main():
    mode = sys.argv[1]
    if mode == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    elif mode == "call":
        asyncio.run(call(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
