#!/usr/bin/env python3
"""Checks the chat page in headless Chromium, as a person would use it. Not run in CI.

Two tabs (Alice, Bob) join a room through the page's own forms; Alice's member list
must show both names; Bob's line must reach Alice's log; at 420 px (a phone) the log
keeps the width and the member list goes under it. Then the server is killed:
the page must say it is offline, disable its inputs, and not log "you: ..." for a line
typed meanwhile. The server is started again on the same port: the page must reconnect
by itself, set its name again, rejoin its room (both names back in the list), and chat
again. Screenshots go to /tmp/chat-page-*.png.

Needs: Debian's `chromium` and `python3-websockets` (apt-get install chromium
python3-websockets), and a built server:

    cargo build --release -p fanout-chat-server
    /usr/bin/python3 examples/chat_server/browser_check.py [target/release/chat_server]
"""

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

SERVER = sys.argv[1] if len(sys.argv) > 1 else "target/release/chat_server"
PORT = 18777
DEVTOOLS = 18778
PAGE = f"http://127.0.0.1:{PORT}/"


def start_server():
    server = subprocess.Popen([SERVER, "--port", str(PORT)], stdout=subprocess.PIPE)
    first = server.stdout.readline().decode()
    assert first.startswith("listening on"), first
    return server


class Tab:
    """One page, driven over the DevTools protocol."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, **params):
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply.get("result", {})

    async def js(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def until(self, expression, what, limit=30.0):
        deadline = time.time() + limit
        while time.time() < deadline:
            if await self.js(expression):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"never: {what}")

    async def submit(self, form, field, value):
        await self.js(
            f"document.getElementById({json.dumps(field)}).value = {json.dumps(value)};"
            f"document.getElementById({json.dumps(form)}).requestSubmit();"
        )

    async def screenshot(self, path):
        shot = await self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


def text_of(element):
    return f"document.getElementById({json.dumps(element)}).textContent"


async def open_tab():
    request = urllib.request.Request(f"http://127.0.0.1:{DEVTOOLS}/json/new?{PAGE}", method="PUT")
    target = json.loads(urllib.request.urlopen(request).read())
    ws = await websockets.connect(target["webSocketDebuggerUrl"], max_size=None)
    tab = Tab(ws)
    await tab.call("Page.enable")
    await tab.until(f"{text_of('status')} === 'connected'", "the page connects")
    return tab


async def main():
    server = start_server()
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", f"--remote-debugging-port={DEVTOOLS}",
            f"--user-data-dir={profile}", "--window-size=1200,900", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{DEVTOOLS}/json/version")
                break
            except OSError:
                await asyncio.sleep(0.1)
        alice, bob = await open_tab(), await open_tab()
        for tab, name in ((alice, "Alice"), (bob, "Bob")):
            await tab.submit("name-form", "name", name)
            await tab.until(f"{text_of('me')} === {json.dumps(name)}", f"{name} is named")
            await tab.submit("join-form", "room", "rust")
        members = text_of("members")
        await alice.until(
            f"{members}.includes('Alice (you)') && {members}.includes('Bob') && {members}.includes('2 here')",
            "Alice's member list shows Alice (you) and Bob",
        )
        print("ok: member lists show display names:", await alice.js(members))
        await bob.submit("say-form", "text", "hello from Bob")
        await alice.until(f"{text_of('log')}.includes('Bob: hello from Bob')", "Alice gets Bob's line")
        await alice.until(f"{text_of('log')}.includes('Bob joined #rust')", "Alice saw Bob join")
        print("ok: a line and a join reach the other tab")
        await alice.screenshot("/tmp/chat-page-1-online.png")

        # A phone-sized screen: the log keeps the width, the member list goes under it.
        await alice.call(
            "Emulation.setDeviceMetricsOverride", width=420, height=900, deviceScaleFactor=1, mobile=True
        )
        await alice.until("window.innerWidth === 420", "the page is 420 px wide")
        rect = "JSON.stringify(document.getElementById({}).getBoundingClientRect())"
        log_box = json.loads(await alice.js(rect.format(json.dumps("log"))))
        members_box = json.loads(await alice.js(rect.format(json.dumps("members"))))
        assert log_box["width"] >= members_box["width"], (log_box, members_box)
        assert members_box["top"] >= log_box["bottom"], (log_box, members_box)
        print(f"ok: at 420 px the log is {log_box['width']:.0f} px wide, the member list under it")
        await alice.screenshot("/tmp/chat-page-narrow.png")
        await alice.call("Emulation.clearDeviceMetricsOverride")

        # The server goes away (a graceful stop: every page is told 1001 and why).
        server.send_signal(signal.SIGTERM)
        server.wait()
        await alice.until(f"{text_of('status')}.startsWith('offline')", "Alice's page says offline")
        status = await alice.js(text_of("status"))
        assert "1001: server shutting down" in status, status
        assert await alice.js("document.getElementById('text').disabled"), "input enabled offline"
        assert await alice.js("document.getElementById('room').disabled"), "join enabled offline"
        await alice.submit("say-form", "text", "typed while offline")
        await asyncio.sleep(0.3)
        log = await alice.js(text_of("log"))
        assert "you: typed while offline" not in log, log
        print("ok: offline:", await alice.js(text_of("status")), "| inputs disabled, nothing logged as said")
        await alice.screenshot("/tmp/chat-page-2-offline.png")

        # It comes back on the same port: both pages reconnect, rename and rejoin.
        await asyncio.sleep(1.0)
        server = start_server()
        for tab in (alice, bob):
            await tab.until(f"{text_of('status')} === 'connected'", "the page reconnects")
        await alice.until(
            f"{members}.includes('Alice (you)') && {members}.includes('Bob') && {members}.includes('2 here')",
            "after the reconnect both are back in #rust, by name",
        )
        assert await alice.js(text_of("me")) == "Alice"
        assert not await alice.js("document.getElementById('text').disabled")
        await bob.submit("say-form", "text", "after the restart")
        await alice.until(f"{text_of('log')}.includes('Bob: after the restart')", "chat works again")
        assert "reconnected: rejoining #rust" in await alice.js(text_of("log"))
        print("ok: reconnected, renamed and rejoined by themselves:", await alice.js(members))
        await alice.screenshot("/tmp/chat-page-3-back.png")
        print("browser check passed")
    finally:
        browser.terminate()
        server.terminate()
        browser.wait()
        server.wait()


asyncio.run(main())
