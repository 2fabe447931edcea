"""An aio-pika JsonRPC client calling the Rust consumer's procedures (tests/interop.rs).

Usage: client.py AMQP_URL HANDLER

Calls HANDLER.add, HANDLER.echo and HANDLER.fail with kwargs and prints one JSON object with
what came back: results as they decoded, errors as the exception's class and payload.
"""

import asyncio
import json
import sys

import aio_pika

from json_rpc import create_json_rpc


async def attempt(rpc, method, kwargs):
    try:
        return {"result": await rpc.call(method, kwargs=kwargs)}
    except Exception as exc:  # noqa: BLE001 - the test wants whatever was raised
        payload = exc.args[1] if len(exc.args) > 1 else None
        return {"exception": type(exc).__name__, "payload": payload}


async def main(url, handler):
    connection = await aio_pika.connect_robust(url)
    async with connection:
        rpc = await create_json_rpc(connection)
        report = {
            "add": await attempt(rpc, f"{handler}.add", {"a": 2, "b": 40}),
            "exact": await attempt(rpc, f"{handler}.add", {"a": 9007199254740993, "b": 0}),
            "echo": await attempt(rpc, f"{handler}.echo", {"text": "héllo \"wörld\""}),
            "fail": await attempt(rpc, f"{handler}.fail", {"message": "disk full"}),
            "bad": await attempt(rpc, f"{handler}.add", {"a": "two", "b": 1}),
        }
        await rpc.close()
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=60))
