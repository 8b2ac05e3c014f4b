"""Cameras that accept and say nothing, never accept, or answer a byte a second."""

import asyncio

import pytest

from tests.hostile.harness import H264_SDP, HostileCamera, assert_unharmed, bench, report


async def test_silent_accept_fails_at_the_request_timeout(simulator):
    async def behaviour(peer):
        await peer.request()
        await asyncio.sleep(3600)  # accepted, read, never answered

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator, request_timeout=1.0) as b:
            seen = await b.watch(4.0, until=lambda status: bool(status["error"]))
    finally:
        await camera.close()
    report("silent accept", seen, "one request pending, given up after request_timeout")
    assert seen.last["error"] == "OPTIONS: no answer in 1 s"
    assert_unharmed(seen)


async def test_connect_that_never_completes_fails_at_the_connect_timeout(simulator, monkeypatch):
    camera = await HostileCamera(lambda peer: asyncio.sleep(0)).start()
    loop = asyncio.get_running_loop()
    original = type(loop).create_connection

    async def blackhole(self, factory, host=None, port=None, **kwargs):
        if port == camera.port:  # as a SYN that nothing answers: the OS would wait 127 s
            await asyncio.sleep(3600)
        return await original(self, factory, host, port, **kwargs)

    monkeypatch.setattr(type(loop), "create_connection", blackhole)
    try:
        async with bench(camera.url(), simulator, connect_timeout=0.5) as b:
            started = loop.time()
            seen = await b.watch(3.0, until=lambda status: bool(status["error"]))
            waited = loop.time() - started
    finally:
        await camera.close()
    report("connect never completes", seen, "nothing held; given up after connect_timeout")
    assert seen.last["error"] == f"connect: cannot reach 127.0.0.1:{camera.port}: no answer in 0.5 s"
    assert waited < 2.0
    assert_unharmed(seen)


@pytest.mark.parametrize("phase", ["answer", "media"])
async def test_one_byte_a_second_fails_at_a_timeout(simulator, phase):
    async def behaviour(peer):
        if phase == "answer":
            request = await peer.request()
            data = f"RTSP/1.0 200 OK\r\nCSeq: {request.headers.get('CSeq')}\r\n\r\n".encode()
        else:
            await peer.handshake(H264_SDP)
            asyncio.get_running_loop().create_task(peer.keep_answering())
            data = b"$\x00\x05\xdc" + bytes(1500)  # one RTP packet, a byte a second
        for byte in data:
            peer.writer.write(bytes([byte]))
            await peer.writer.drain()
            await asyncio.sleep(1.0)

    camera = await HostileCamera(behaviour).start()
    try:
        async with bench(camera.url(), simulator, request_timeout=1.0, stall_timeout=1.5, transport="tcp") as b:
            seen = await b.watch(5.0, until=lambda status: bool(status["error"]))
    finally:
        await camera.close()
    report(f"1 byte/s ({phase})", seen, "a few bytes held; given up after request_timeout or stall_timeout")
    expected = "OPTIONS: no answer in 1 s" if phase == "answer" else "PLAY: no media from the camera for 1.5 s"
    assert (seen.last["error"] or "").startswith(expected)
    assert_unharmed(seen)
