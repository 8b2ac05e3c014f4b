"""The connection test (POST /api/cameras/probe) says in plain words when a camera's sound is in a codec
OpticLink does not take: a simulated camera whose description offers its sound as MPEG audio (`MPA/90000`,
static payload type 14), alone or beside a G.711 track."""

import httpx
import pytest

from opticlink.api.app import create_app
from opticlink.api.cameras import _codec_words
from opticlink.api.config import ServiceConfig
from opticlink.api.service import Service
from opticlink.sim.server import SimulatorServer, _Connection
from tests.auth.helpers import credentials
from tests.conftest import small_camera

MPA = "MPA/90000"


def _sound_as_mpa(body: bytes) -> bytes:
    """The description with the camera's sound (its recvonly audio section) offered as MPEG audio only:
    the client never sets it up (the backchannel's sendonly section is left as it is)."""
    head, *sections = body.decode().split("m=")
    out = []
    for section in sections:
        if section.startswith("audio") and "a=recvonly" in section:
            lines = [x for x in section.split("\r\n") if not x.startswith(("a=rtpmap:", "a=fmtp:"))]
            lines[0] = "audio 0 RTP/AVP 14"
            lines.insert(1, f"a=rtpmap:14 {MPA}")
            section = "\r\n".join(lines)
        out.append(section)
    return "m=".join([head, *out]).encode()


@pytest.fixture
def sound_as_mpa(monkeypatch):
    original = _Connection._describe

    def describe(self, spec, backchannel):
        response = original(self, spec, backchannel)
        if spec.name == "mpa":  # the other cameras as they are
            response.body = _sound_as_mpa(response.body)
        elif spec.name == "both":  # G.711 and a second sound in MPEG audio
            response.body += b"m=audio 0 RTP/AVP 14\r\na=rtpmap:14 MPA/90000\r\na=control:trackID=9\r\na=recvonly\r\n"
        return response

    monkeypatch.setattr(_Connection, "_describe", describe)


def test_a_codec_is_named_as_a_camera_settings_page_names_it():
    assert _codec_words(MPA) == "MPEG audio (MP2/MP3) (MPA)"
    assert _codec_words("PCMU/8000") == "G.711 µ-law (PCMU)"
    assert _codec_words("X-VENDOR/8000") == "X-VENDOR"


def test_the_description_rewrite_offers_the_sound_as_mpeg_audio_only():
    body = (b"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\na=recvonly\r\n"
            b"m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=1\r\na=recvonly\r\n"
            b"m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=2\r\na=sendonly\r\n")
    text = _sound_as_mpa(body).decode()
    assert "m=audio 0 RTP/AVP 14\r\na=rtpmap:14 MPA/90000\r\na=control:trackID=1\r\na=recvonly\r\n" in text
    assert text.count("PCMU/8000") == 1 and "a=rtpmap:96 H264/90000" in text  # the backchannel, the picture


@pytest.mark.slow
async def test_the_connection_test_says_the_cameras_audio_codec_is_not_supported(sound_as_mpa):
    service = Service(ServiceConfig())
    async with SimulatorServer([small_camera("mpa"), small_camera("both")], port=0) as sim, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)), base_url="http://127.0.0.1",
                              headers=credentials(service).bearer, timeout=20) as admin:
        alone = await admin.post("/api/cameras/probe", json={"url": sim.url("mpa")})
        beside = await admin.post("/api/cameras/probe", json={"url": sim.url("both")})
    assert alone.status_code == 200, alone.text
    report = alone.json()
    # the picture plays; the sound is named, marked unsupported, and said so in words
    assert report["playing"] is True and report["ok"] is False
    assert report["video"]["frames"] > 0 and [t["kind"] for t in report["tracks"]] == ["video"]
    assert report["audio"] == {"codec": "MPA", "name": "MPEG audio (MP2/MP3)", "clock_rate": 90000, "frames": 0,
                               "supported": False}
    assert {"kind": "audio", "codec": MPA, "direction": "recvonly", "state": "unsupported codec MPA"} \
        in report["media"]
    assert report["problems"] == [
        "audio codec MPEG audio (MP2/MP3) (MPA) is not supported: the camera's sound cannot be heard or recorded "
        "(choose G.711, AAC or L16 in the camera's audio settings)"]

    # a camera with a G.711 sound as well: that one is used, the MPEG one left out (and said so)
    other = beside.json()
    assert other["audio"]["name"] == "G.711 µ-law" and other["audio"]["supported"] is True
    assert other["problems"] == ["audio codec MPEG audio (MP2/MP3) (MPA) is not supported: that audio stream is "
                                 "left out (the camera's G.711 µ-law (PCMU) sound is used)"]
    audited = [row.detail for row in service.database.audit() if row.action == "camera_probe"]
    assert any("MPEG audio (MP2/MP3) (MPA) is not supported" in (detail or "") for detail in audited)
