"""WS-Discovery: unicast Probes to the simulator's responder on loopback, and the ProbeMatches parser under fuzz."""

import asyncio
import inspect

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opticlink.camera import discovery
from opticlink.camera.discovery import (
    MULTICAST_ADDRESS,
    DiscoveryParseError,
    build_probe,
    discover,
    parse_probe_matches,
)
from opticlink.sim.onvif import MAX_DATAGRAM_BYTES, probe_matches


async def test_unicast_probe_finds_every_camera_with_its_device_service(onvif_sim):
    devices = await discover(("127.0.0.1", onvif_sim.onvif.discovery_port), timeout=0.5)
    by_name = {d.name: d for d in devices}
    assert set(by_name) == {"cam1", "cam2"}
    for name, device in by_name.items():
        assert device.xaddrs == (onvif_sim.onvif_url(name),)
        assert "dn:NetworkVideoTransmitter" in device.types
        assert device.hardware == "OpticLink-Sim"
        assert device.endpoint.startswith("urn:uuid:")
    assert len({d.endpoint for d in devices}) == 2


async def test_the_responder_ignores_junk_and_still_answers(onvif_sim):
    loop = asyncio.get_running_loop()
    port = onvif_sim.onvif.discovery_port
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port))
    try:
        for junk in (b"", b"\x00" * 100, b"<not xml", b"x" * (MAX_DATAGRAM_BYTES + 1),
                     b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>', build_probe()[1].replace(b"Probe>", b"Hello>")):
            transport.sendto(junk)
    finally:
        transport.close()
    devices = await discover(("127.0.0.1", port), timeout=0.3)
    assert len(devices) == 2


def test_probe_matches_relate_to_the_probe_and_filter_by_type(onvif_sim):
    devices = list(onvif_sim.onvif.devices.values())
    message_id, probe = build_probe("urn:uuid:1234")
    found = parse_probe_matches(probe_matches(probe, devices))
    assert [d.relates_to for d in found] == [message_id, message_id]
    assert probe_matches(probe.replace(b"dn:NetworkVideoTransmitter", b"dn:Printer"), devices) is None
    untyped = probe.replace(b"<d:Types>dn:NetworkVideoTransmitter</d:Types>", b"")
    assert len(parse_probe_matches(probe_matches(untyped, devices))) == 2


def test_the_default_probe_goes_to_the_multicast_group():
    # the multicast path exists for real use; tests never send to it
    assert inspect.signature(discover).parameters["address"].default == MULTICAST_ADDRESS == ("239.255.255.250", 3702)


@pytest.mark.parametrize("data, words", [
    (b"", "malformed XML"),
    (b"<a/>", "not a SOAP 1.2 envelope"),
    (b'<?xml version="1.0" encoding="nope"?><a/>', "malformed XML"),
    (b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>', "DTDs or entities"),
    (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>', "not a ProbeMatches"),
    (b"<" * (discovery.MAX_DATAGRAM_BYTES + 1), "larger than"),
])
def test_the_parser_refuses_what_is_not_a_probe_match_clearly(data, words):
    with pytest.raises(DiscoveryParseError, match=words):
        parse_probe_matches(data)


def _valid_matches() -> bytes:
    from opticlink.sim.onvif import OnvifDevice
    from opticlink.sim.spec import CameraSpec

    devices = [OnvifDevice(CameraSpec(name=f"cam{i}"), "127.0.0.1", 8000 + i, 8554) for i in range(2)]
    reply = probe_matches(build_probe()[1], devices)
    assert reply is not None
    return reply


VALID = _valid_matches()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_any_bytes_give_records_or_a_clear_error(data):
    try:
        devices = parse_probe_matches(data)
    except DiscoveryParseError:
        return
    assert isinstance(devices, list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID)), st.integers(0, len(VALID)), st.binary(max_size=64))
def test_fuzz_a_mangled_probe_match_gives_records_or_a_clear_error(start, end, insert):
    start, end = min(start, end), max(start, end)
    data = VALID[:start] + insert + VALID[end:]
    try:
        devices = parse_probe_matches(data)
    except DiscoveryParseError:
        return
    for device in devices:
        assert all(x.startswith("http") for x in device.xaddrs)
        assert isinstance(device.scopes, tuple)
