"""An aio-pika JsonRPC server for the Rust client to call (tests/interop.rs).

Usage: server.py AMQP_URL HANDLER

Registers HANDLER.multiply(x, y) and HANDLER.boom(message) (raises ValueError) with
aio-pika's default queue flags, prints READY,
and serves until its standard input closes (the test ends) or 60 seconds pass.
"""

import asyncio
import sys

import aio_pika
from aio_pika.patterns import JsonRPC


def multiply(*, x, y):
    return x * y


def boom(*, message):
    raise ValueError(message)


async def stdin_closed():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def main(url, handler):
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        rpc = await JsonRPC.create(channel)
        await rpc.register(f"{handler}.multiply", multiply)
        await rpc.register(f"{handler}.boom", boom)
        print("READY", flush=True)
        try:
            await asyncio.wait_for(stdin_closed(), timeout=60)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
