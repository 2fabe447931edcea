"""An aio-pika JsonRPC server for the Rust client to call (tests/interop.rs).

Usage: server.py AMQP_URL HANDLER [quorum|classic]

Registers HANDLER.multiply(x, y) and HANDLER.boom(message) (raises ValueError) with the
queue flags of the topology (quorum by default, as transport-amqp's; classic = aio-pika's
defaults), prints READY, and serves until its standard input closes (the test ends) or 60
seconds pass.
"""

import asyncio
import sys

import aio_pika

from json_rpc import create_json_rpc


def multiply(*, x, y):
    return x * y


def boom(*, message):
    raise ValueError(message)


async def stdin_closed():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


# The request queue flags of each topology; aio-pika adds x-dead-letter-exchange itself.
TOPOLOGIES = {
    "quorum": dict(durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 3}),
    "classic": dict(),
}


async def main(url, handler, topology):
    queue = TOPOLOGIES[topology]
    connection = await aio_pika.connect_robust(url)
    async with connection:
        rpc = await create_json_rpc(connection)
        await rpc.register(f"{handler}.multiply", multiply, **queue)
        await rpc.register(f"{handler}.boom", boom, **queue)
        print("READY", flush=True)
        try:
            await asyncio.wait_for(stdin_closed(), timeout=60)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "quorum"))
