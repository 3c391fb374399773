#!/usr/bin/env python3
"""Reads every message of a JetStream stream with nats-py (a real client, as a fleet consumer
would), and prints one JSON object per message: subject, Nats-Msg-Id, the record.

Usage: consume.py URL STREAM"""
import asyncio
import json
import sys

import nats


async def main(url, stream):
    nc = await nats.connect(url)
    js = nc.jetstream()
    count = (await js.stream_info(stream)).state.messages
    sub = await js.pull_subscribe("keytrail.>", stream=stream)
    seen = 0
    while seen < count:
        for msg in await sub.fetch(min(256, count - seen), timeout=10):
            print(json.dumps({
                "subject": msg.subject,
                "id": (msg.headers or {}).get("Nats-Msg-Id"),
                "record": json.loads(msg.data),
            }))
            await msg.ack()
            seen += 1
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
