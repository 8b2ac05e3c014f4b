"""ONVIF import (onvif-zeep-async) of simulated cameras: streams, audio, speaker, clock, credentials."""

import pytest

from opticlink.api.config import CameraConfig
from opticlink.camera.onvif import REFUSED, OnvifImportError, import_camera, strip_credentials
from opticlink.camera.probe import probe
from opticlink.cli import _onvif, build_parser
from opticlink.rtsp.client import ClientConfig
from tests.onvif.conftest import PASSWORD, USER


async def _plays(config: CameraConfig) -> None:
    """The imported URL plays: our RTSP client gets pictures from it, with the config's credentials."""
    report = await probe(ClientConfig(config.url, username=config.username, password=config.password), seconds=0.4)
    assert report.error is None, report.error
    assert report.tracks[0].units > 0


async def test_an_open_camera_imports_main_sub_audio_and_speaker_and_its_url_plays(onvif_sim):
    camera = await import_camera("127.0.0.1", onvif_sim.onvif.device("cam1").http_port)
    assert (camera.manufacturer, camera.model, camera.hardware) == ("OpticLink", "Simulated camera", "OpticLink-Sim")
    assert [(p.width, p.height) for p in camera.profiles] == [(480, 270), (320, 180)]
    assert camera.url == onvif_sim.url("cam1") and camera.substream_url == onvif_sim.url("cam1", sub=True)
    assert camera.audio and camera.talkback and camera.backchannel_codec == "G711"
    assert camera.clock_offset_s is not None and abs(camera.clock_offset_s) < 2 and camera.warnings == []
    config = CameraConfig.model_validate(camera.camera_config("door"))
    assert (config.id, config.name, config.username, config.talkback) == ("door", "cam1", None, True)
    await _plays(config)


async def test_a_protected_camera_imports_with_credentials_kept_apart_and_its_url_plays(onvif_sim):
    camera = await import_camera("127.0.0.1", onvif_sim.onvif.device("cam2").http_port, USER, PASSWORD)
    assert camera.url == onvif_sim.url("cam2") and "@" not in camera.url
    assert camera.substream_url is None
    assert not camera.audio and not camera.talkback and camera.backchannel_codec is None
    config = CameraConfig.model_validate(camera.camera_config())
    assert (config.username, config.password, config.talkback, config.live_audio) == (USER, PASSWORD, False, False)
    assert PASSWORD not in repr(camera)
    await _plays(config)


@pytest.mark.parametrize("username, password", [(USER, "wrong"), ("root", PASSWORD), (None, None)])
async def test_wrong_or_missing_credentials_are_a_clear_error_without_the_password(onvif_sim, username, password):
    with pytest.raises(OnvifImportError) as caught:
        await import_camera("127.0.0.1", onvif_sim.onvif.device("cam2").http_port, username, password)
    assert str(caught.value) == REFUSED == "the camera refused the user name or password"


async def test_a_camera_clock_far_from_ours_is_a_warning(onvif_sim):
    onvif_sim.onvif.device("cam1").clock_offset_s = 30.0
    camera = await import_camera("127.0.0.1", onvif_sim.onvif.device("cam1").http_port)
    assert 28 < camera.clock_offset_s < 32
    assert len(camera.warnings) == 1 and "+30 s from this server's" in camera.warnings[0]


async def test_nothing_listening_is_a_clear_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OnvifImportError, match=f"127.0.0.1:{port}"):
        await import_camera("127.0.0.1", port, timeout=5)


def test_credentials_are_taken_out_of_stream_uris():
    assert strip_credentials("rtsp://u:p%40ss@192.0.2.1:554/s?x=1") == "rtsp://192.0.2.1:554/s?x=1"
    assert strip_credentials("rtsp://u@[2001:db8::1]/s") == "rtsp://[2001:db8::1]/s"
    assert strip_credentials("rtsp://192.0.2.1/s") == "rtsp://192.0.2.1/s"


async def test_cli_import_prints_the_yaml_entry_and_discover_lists_the_devices(onvif_sim, capsys):
    import yaml

    port = onvif_sim.onvif.device("cam2").http_port
    args = build_parser().parse_args(["onvif", "import", "127.0.0.1", "--port", str(port), "--username", USER,
                                      "--password", PASSWORD, "--id", "gate"])
    assert await _onvif(args) == 0
    out = capsys.readouterr()
    entry = yaml.safe_load(out.out)
    assert entry == [{"id": "gate", "name": "cam2", "url": onvif_sim.url("cam2"), "username": USER,
                      "password": PASSWORD, "talkback": False, "live_audio": False}]
    args = build_parser().parse_args(["onvif", "import", "127.0.0.1", "--port", str(port), "--password", "x"])
    assert await _onvif(args) == 1
    assert capsys.readouterr().err.strip() == f"opticlink onvif import: {REFUSED}"
    address = f"127.0.0.1:{onvif_sim.onvif.discovery_port}"
    args = build_parser().parse_args(["onvif", "discover", "--address", address, "--timeout", "0.3"])
    assert await _onvif(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(f"{onvif_sim.onvif_url(n)}\tname: {n}\thardware: OpticLink-Sim"
                                   for n in ("cam1", "cam2"))
