"""Credentials go only to the camera they were given for, and in clear text only when allowed."""

import base64

import pytest

from opticlink.errors import RtspError
from opticlink.rtsp.aio import RtspClient
from opticlink.rtsp.client import ClientConfig
from tests.hostile.harness import HostileCamera, assert_unharmed, bench, report

PASSWORD = "s3cret-Pw9"


async def challenge(peer, scheme: str = "Basic") -> None:
    while True:
        request = await peer.request()
        value = 'Basic realm="cam"' if scheme == "Basic" else 'Digest realm="cam", nonce="abc", algorithm=MD5'
        await peer.answer(request, 401, "Unauthorized", WWW_Authenticate=value)


async def test_redirect_to_another_port_gets_no_credentials(simulator):
    thief = await HostileCamera(challenge).start()

    async def redirect(peer):
        while True:
            request = await peer.request()
            await peer.answer(request, 302, "Found", Location=thief.url("stolen"))

    camera = await HostileCamera(redirect).start()
    try:
        async with bench(camera.url(credentials=f"admin:{PASSWORD}"), simulator) as b:
            seen = await b.watch(2.0, until=lambda status: bool(status["error"]) and thief.requests)
    finally:
        await camera.close()
        await thief.close()
    report("redirect to another port with credentials", seen,
           "at most 3 redirects an attempt (RtspClient.MAX_REDIRECTS)")
    assert thief.requests, "the redirect was not followed"
    assert all(r.headers.get("Authorization") is None for r in thief.requests)
    assert "no credentials were given" in seen.last["error"]
    assert PASSWORD not in str(seen.statuses)
    assert_unharmed(seen)


async def test_basic_only_camera_is_refused_unless_the_link_is_trusted():
    camera = await HostileCamera(challenge).start()
    try:
        client = RtspClient(ClientConfig(camera.url(credentials=f"admin:{PASSWORD}")))
        with pytest.raises(RtspError, match=r"only Basic authentication.*basic_auth"):
            await client.start()
        assert all(r.headers.get("Authorization") is None for r in camera.requests)

        client = RtspClient(ClientConfig(camera.url(credentials=f"admin:{PASSWORD}"), basic_auth=True))
        with pytest.raises(RtspError, match="rejected the credentials"):
            await client.start()
        token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        assert camera.requests[-1].headers.get("Authorization") == f"Basic {token}"
    finally:
        await camera.close()


async def test_digest_is_answered_without_basic_auth():
    camera = await HostileCamera(lambda peer: challenge(peer, "Digest")).start()
    try:
        client = RtspClient(ClientConfig(camera.url(credentials=f"admin:{PASSWORD}")))
        with pytest.raises(RtspError, match="rejected the credentials"):
            await client.start()
        authorization = camera.requests[-1].headers.get("Authorization") or ""
        assert authorization.startswith("Digest ") and PASSWORD not in authorization
    finally:
        await camera.close()
