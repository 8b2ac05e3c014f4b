"""The simulator's ONVIF SOAP service under hostile requests: each gets a SOAP Fault, and the server goes on."""

import asyncio
import base64
import datetime as dt
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opticlink.sim.onvif import (
    ENV,
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    TDS,
    TRT,
    WSSE,
    WSU,
    OnvifDevice,
    parse_xml,
    password_digest,
)
from opticlink.sim.spec import CameraSpec
from tests.onvif.conftest import PASSWORD, USER


def envelope(operation: str, ns: str = TDS, header: str = "") -> bytes:
    return (f'<s:Envelope xmlns:s="{ENV}"><s:Header>{header}</s:Header><s:Body><x:{operation} xmlns:x="{ns}"/>'
            f"</s:Body></s:Envelope>").encode()


def token(username: str, password: str, nonce: bytes | None = None, created: str | None = None) -> str:
    nonce = nonce or os.urandom(16)
    created = created or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username><wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/"
            f'oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{password_digest(nonce, created, password)}'
            f"</wsse:Password><wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
            f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>")


def fault_subcode(body: bytes) -> str:
    root = parse_xml(body)
    value = root.find(f"{{{ENV}}}Body/{{{ENV}}}Fault/{{{ENV}}}Code/{{{ENV}}}Subcode/{{{ENV}}}Value")
    assert value is not None, body
    return value.text


async def still_answers(client: httpx.AsyncClient, url: str) -> None:
    response = await client.post(url, content=envelope("GetSystemDateAndTime"))
    assert response.status_code == 200 and b"UTCDateTime" in response.content


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode()
                     for i in range(1, 10))
          + b']><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol9;</s:Body></s:Envelope>')


@pytest.mark.parametrize("body, status, words", [
    (b"<s:Envelope><unclosed", 400, b"malformed XML"),
    (LAUGHS, 400, b"DTDs and entities are not accepted"),
    (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>', 400, b"DTDs and entities are not accepted"),
    (b"<a/>", 400, b"not a SOAP 1.2 envelope"),
    (b"\xff\xfe\x00garbage", 400, b"malformed XML"),
    (b"x" * (MAX_BODY_BYTES + 1), 413, b"larger than"),
    (envelope("Reboot"), 500, b"not supported"),
])
async def test_hostile_bodies_get_a_fault_and_the_server_goes_on(onvif_sim, body, status, words):
    url = onvif_sim.onvif_url("cam1")
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(url, content=body, headers={"Content-Type": "application/soap+xml"})
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/soap+xml")
        assert fault_subcode(response.content).startswith("ter:") and words in response.content
        await still_answers(client, url)


async def test_oversized_headers_and_bad_framing_get_an_error_and_the_server_goes_on(onvif_sim):
    url = onvif_sim.onvif_url("cam1")
    port = onvif_sim.onvif.device("cam1").http_port
    for request, status in ((b"POST /onvif/device_service HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER_BYTES + 1), b"431"),
                            (b"POST /onvif/device_service HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
                            (b"POST /onvif/device_service HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
                            (b"BREW\r\n\r\n", b"400"),
                            (b"POST /onvif/device_service HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", b"413")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.split(b" ")[1] == status, answer[:200]
    async with httpx.AsyncClient(timeout=5) as client:
        await still_answers(client, url)
        response = await client.get(url)
        assert response.status_code == 405
        response = await client.post(url.replace("device_service", "nothing"), content=envelope("GetScopes"))
        assert response.status_code == 404


async def test_username_token_is_required_except_before_authentication(onvif_sim):
    url = onvif_sim.onvif_url("cam2")
    async with httpx.AsyncClient(timeout=5) as client:
        for operation in ("GetSystemDateAndTime", "GetCapabilities", "GetServices"):
            assert (await client.post(url, content=envelope(operation))).status_code == 200
        for operation, ns in (("GetDeviceInformation", TDS), ("GetProfiles", TRT), ("GetStreamUri", TRT)):
            response = await client.post(url, content=envelope(operation, ns))
            assert response.status_code == 400 and fault_subcode(response.content) == "ter:NotAuthorized"
        response = await client.post(url, content=envelope("GetDeviceInformation", header=token(USER, PASSWORD)))
        assert response.status_code == 200 and b"<tds:Manufacturer>OpticLink" in response.content
        response = await client.post(url, content=envelope("GetDeviceInformation", header=token(USER, "nope")))
        assert fault_subcode(response.content) == "ter:NotAuthorized"


def test_replayed_stale_or_plain_text_tokens_are_refused():
    device = OnvifDevice(CameraSpec(name="cam", username=USER, password=PASSWORD), "127.0.0.1", 80, 554)
    now = dt.datetime.now(dt.UTC)
    fresh = token(USER, PASSWORD, nonce=b"n" * 16)
    assert device.handle("/onvif/device_service", envelope("GetScopes", header=fresh), now.timestamp())[0] == 200
    replayed = device.handle("/onvif/device_service", envelope("GetScopes", header=fresh), now.timestamp())
    assert replayed[0] == 400 and fault_subcode(replayed[1]) == "ter:NotAuthorized"
    stale = token(USER, PASSWORD, created=(now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert device.handle("/onvif/device_service", envelope("GetScopes", header=stale), now.timestamp())[0] == 400
    text = fresh.replace("#PasswordDigest", "#PasswordText")
    assert device.handle("/onvif/device_service", envelope("GetScopes", header=text), now.timestamp())[0] == 400


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1024) | st.builds(lambda a, b: envelope("GetScopes")[:a] + b, st.integers(0, 200),
                                            st.binary(max_size=64)))
def test_fuzz_any_request_body_gets_an_answer_never_an_exception(body):
    device = OnvifDevice(CameraSpec(name="cam"), "127.0.0.1", 80, 554)
    status, answer = device.handle("/onvif/device_service", body, 1.7e9)
    assert status in (200, 400, 413, 500)
    root = parse_xml(answer)
    assert root.tag == f"{{{ENV}}}Envelope"
    if status != 200:
        assert fault_subcode(answer).startswith("ter:")
