"""JsonRPC.create that rides out the auto-delete `rpc.dlx` race (used by client.py, server.py).

aio-pika declares the headers exchange `rpc.dlx` (auto-delete) and then binds its reply queue
to it. When another client's last binding goes between the two steps, the broker deletes the
exchange and the bind fails with NOT_FOUND, closing the channel. transport-amqp sets its
session up again in that case; aio-pika does not, so this helper does it for the tests.
"""

import asyncio

from aio_pika.patterns import JsonRPC
from aiormq.exceptions import ChannelNotFoundEntity

SETUP_TRIES = 5


async def create_json_rpc(connection):
    """A JsonRPC on a fresh channel of `connection`, set up again after a lost `rpc.dlx`."""
    for attempt in range(1, SETUP_TRIES + 1):
        channel = await connection.channel()
        try:
            return await JsonRPC.create(channel)
        except ChannelNotFoundEntity:
            if attempt == SETUP_TRIES:
                raise
            await asyncio.sleep(0.05 * attempt)
