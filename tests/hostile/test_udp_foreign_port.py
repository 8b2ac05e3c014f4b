"""RTP injected over UDP from another port of the camera's address: dropped and counted."""

import asyncio
import socket

import pytest

from tests.conftest import small_camera
from tests.hostile.harness import assert_unharmed, bench, report, rtp


def _udp_camera():
    spec = small_camera("cam2")
    spec.transports = ("udp",)
    return spec


@pytest.mark.slow
@pytest.mark.parametrize("simulator", [[small_camera("cam1"), _udp_camera()]], indirect=True)
async def test_datagrams_from_a_foreign_port_are_dropped(simulator):
    async with bench(simulator.url("cam2"), simulator, transport="udp") as b:
        session = b.bad.session
        await session.wait_playing(5)
        tracks = [t for t in session.tracks if not t.backchannel]
        injector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        injector.bind(("127.0.0.1", 0))
        injector.setblocking(False)
        loop = asyncio.get_running_loop()
        injected = 0

        async def inject():
            nonlocal injected
            for n in range(1_000_000):
                for track in tracks:
                    assert track.client_ports is not None
                    packet = rtp(b"\x65" + bytes(500), seq=n, ts=n * 3000, ssrc=0xBADBAD,
                                 pt=track.format.payload_type, marker=True)
                    await loop.sock_sendto(injector, packet, ("127.0.0.1", track.client_ports[0]))
                    injected += 1
                await asyncio.sleep(0.005)

        task = loop.create_task(inject())
        try:
            def source_changes() -> float:
                ingest = session.ingest
                return sum(s.receiver.ssrc_changes for s in ingest.states.values()) if ingest else 0

            seen = await b.watch(2.0, source_changes)
        finally:
            task.cancel()
            injector.close()
    report("UDP from a foreign port (400 packets/s)", seen,
           "nothing kept: dropped at the socket, counted in datagrams_dropped")
    assert injected > 200
    assert seen.measure_max == 0  # no re-anchor, no new source: not one injected packet got in
    assert seen.last["datagrams_dropped"] >= injected * 0.9
    assert all(t["reanchors"] == 0 for t in seen.last["sync"]["tracks"])
    assert seen.last["state"] == "playing"
    assert_unharmed(seen)
