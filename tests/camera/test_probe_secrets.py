"""No user:password in what `probe` and `talk` print, as text or JSON, nor in URL errors."""

import json
import socket
import wave

import numpy as np
import pytest

from opticlink.camera.probe import format_report, probe
from opticlink.camera.session import CameraSession
from opticlink.cli import main
from opticlink.errors import RtspError
from opticlink.rtsp.client import ClientConfig, redact_url, split_url
from tests.conftest import small_camera

PASSWORD = "hunter2-Xy"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("simulator", [[small_camera(username="admin", password=PASSWORD)]], indirect=True)
async def test_probe_report_text_and_json_carry_no_password(simulator):
    report = await probe(ClientConfig(simulator.url("cam1", credentials=True)), seconds=0.5)
    text, as_json = format_report(report), json.dumps(report.to_dict())
    assert report.error is None and report.tracks
    assert PASSWORD not in text and PASSWORD not in as_json
    assert "admin:***@" in text


@pytest.mark.parametrize("simulator", [[small_camera(username="admin", password=PASSWORD)]], indirect=True)
async def test_probe_error_with_wrong_password_carries_no_password(simulator):
    url = simulator.url("cam1").replace("rtsp://", f"rtsp://admin:{PASSWORD}-wrong@")
    report = await probe(ClientConfig(url), seconds=0.5)
    assert report.error and "rejected the credentials" in report.error
    assert PASSWORD not in format_report(report) + json.dumps(report.to_dict())


def test_url_errors_carry_no_password():
    for url in (f"rtsp://admin:{PASSWORD}@camera:notaport/x", f"http://admin:{PASSWORD}@camera/x",
                f"rtsp://admin:{PASSWORD}@/x"):
        with pytest.raises(ValueError) as caught:
            split_url(url)
        assert PASSWORD not in str(caught.value) and "admin:***@" in str(caught.value)
    assert redact_url(f"rtsp://admin:{PASSWORD}@10.0.0.9:554/s") == "rtsp://admin:***@10.0.0.9:554/s"
    assert redact_url("rtsp://10.0.0.9/s") == "rtsp://10.0.0.9/s"


async def test_invalid_camera_url_stops_the_camera_with_a_clear_error(caplog):
    session = CameraSession(ClientConfig(f"rtsp://admin:{PASSWORD}@camera:notaport/x"), name="door")
    await session.run()
    assert session.state == "stopped"
    assert str(session.last_error).startswith("url: malformed URL")
    assert PASSWORD not in str(session.last_error) and PASSWORD not in caplog.text
    assert "camera door" in caplog.text
    with pytest.raises(RtspError):
        await CameraSession(session.config, reconnect=False).run()


def test_cli_probe_and_talk_print_no_password(capsys, tmp_path):
    port = _closed_port()
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/stream"
    assert main(["probe", url, "--seconds", "0.2", "--json"]) == 1
    assert main(["probe", url, "--seconds", "0.2"]) == 1
    assert main(["probe", f"rtsp://admin:{PASSWORD}@camera:notaport/x", "--seconds", "0.2"]) != 0
    audio = tmp_path / "tone.wav"
    with wave.open(str(audio), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(np.zeros(1600, np.int16).tobytes())
    assert main(["talk", url, "--file", str(audio)]) == 1
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert "cannot reach" in out.out + out.err
