#!/usr/bin/env python3
"""Does a slow reader cut off for its backlog get its close frame? Not run in CI.

A real client (Python `websockets`) joins a room and stops reading while another floods
the room with 16 KiB lines, until the server cuts the reader off for its unsent backlog
(`--max-backlog 65536`). The reader then waits DELAY seconds and reads on, slowly,
through what the server had already handed to the socket (megabytes, on loopback), to
the close frame: 1008 with the reason, or none at all (1006). ROUNDS times; prints each
result and a tally.

Needs Debian's `python3-websockets` and a built server:

    cargo build -p fanout-chat-server
    /usr/bin/python3 examples/chat_server/slow_reader_check.py \\
        [--server target/debug/chat_server] [--rounds 10] [--delay 1.5]

With the server's defaults (write timeout 5 s, close timeout 1 s) every round gets 1008
while DELAY is under about 5 s; a server that gave the close frame only the close
timeout got it in no round at DELAY 1.5.
"""

import argparse
import asyncio
import collections
import json
import subprocess
import time

import websockets


async def one_round(url, delay, room):
    speaker = await websockets.connect(url, max_size=None)
    reader = await websockets.connect(url, max_size=None)
    for client in (speaker, reader):
        await client.send(json.dumps({"join": room}))
    await asyncio.sleep(0.2)
    cut = asyncio.Event()

    async def watch():  # the speaker hears the reader leave, too slow
        async for message in speaker:
            if isinstance(message, bytes) and b'"left"' in message and b"too_slow" in message:
                cut.set()
                return

    watcher = asyncio.create_task(watch())
    line = json.dumps({"say": room, "text": "x" * 16384})
    sent = 0
    while not cut.is_set() and sent < 5000:
        await speaker.send(line)
        sent += 1
        await asyncio.sleep(0.001)
    await asyncio.wait_for(cut.wait(), 30)
    await asyncio.sleep(delay)
    frames, started = 0, time.time()
    try:
        while True:
            await reader.recv()
            frames += 1
            await asyncio.sleep(0.002)  # a slow reader
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else 1006
        reason = closed.rcvd.reason if closed.rcvd else "no close frame"
    finally:
        watcher.cancel()
        await speaker.close()
    return code, reason, frames, time.time() - started


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="target/debug/chat_server")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--delay", type=float, default=1.5)
    args = parser.parse_args()
    server = subprocess.Popen(
        [args.server, "--port", "0", "--time-interval-ms", "100000", "--max-backlog", "65536",
         "--max-rate", "0"],
        stdout=subprocess.PIPE,
    )
    try:
        first = server.stdout.readline().decode()
        assert first.startswith("listening on"), first
        url = f"ws://{first.split()[-1]}/"
        tally = collections.Counter()
        for n in range(args.rounds):
            code, reason, frames, took = await one_round(url, args.delay, f"busy-{n}")
            tally[code] += 1
            print(f"round {n}: {code} ({reason}) after {frames} frames read in {took:.2f} s")
        print("close codes:", dict(tally))
    finally:
        server.terminate()
        server.wait()


asyncio.run(main())
