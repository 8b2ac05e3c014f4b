import subprocess
import sys

import pytest

from opticlink.cli import build_parser


@pytest.mark.parametrize("verb", ["probe", "sim", "capture"])
def test_every_verb_has_help(verb):
    result = subprocess.run([sys.executable, "-m", "opticlink", verb, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: opticlink" in result.stdout


def test_bad_faults_are_a_clear_error(capsys):
    from opticlink.cli import main

    assert main(["probe", "--faults", "nonsense=1", "--seconds", "0.1"]) == 2
    assert "unknown fault 'nonsense'" in capsys.readouterr().err


def test_parser_knows_every_verb():
    verbs = build_parser()._subparsers._group_actions[0].choices
    assert {"probe", "sim", "capture"} <= set(verbs)


def test_transport_defaults_to_auto_and_takes_an_order():
    parser = build_parser()
    assert parser.parse_args(["probe"]).transport == "auto"
    assert parser.parse_args(["capture", "rtsp://x/", "-o", "x.mkv", "--transport", "udp,tcp"]).transport == "udp,tcp"


@pytest.fixture
def describes_mpa(monkeypatch):
    from opticlink.sim.server import _Connection

    original = _Connection._describe

    def describe(self, *args, **kwargs):
        response = original(self, *args, **kwargs)
        response.body += b"m=audio 0 RTP/AVP 14\r\na=control:trackID=9\r\na=recvonly\r\n"
        return response

    monkeypatch.setattr(_Connection, "_describe", describe)


async def test_probe_prints_every_media_and_the_transport_in_text_and_json(simulator, describes_mpa, capsys):
    import json

    from opticlink.cli import _probe

    url = simulator.url("cam1")
    assert await _probe(build_parser().parse_args(["probe", url, "--seconds", "0.3"])) == 0
    text = capsys.readouterr().out
    assert f"{url} over TCP (auto)" in text and "media 2: audio MPA/90000 (recvonly): unsupported codec MPA" in text
    assert await _probe(build_parser().parse_args(["probe", url, "--seconds", "0.3", "--json"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["transport"] == "tcp" and report["transport_requested"] == "auto"
    assert [m["state"] for m in report["media"]] == ["playing", "playing", "unsupported codec MPA"]


async def test_capture_warns_on_stderr_about_a_skipped_track(simulator, describes_mpa, capsys, tmp_path):
    from opticlink.cli import _capture

    args = build_parser().parse_args(["capture", simulator.url("cam1"), "--seconds", "0.5", "-o",
                                      str(tmp_path / "c.mkv")])
    assert await _capture(args) == 0
    err = capsys.readouterr().err
    assert "opticlink capture: warning: not recorded: audio MPA/90000 (media 2): unsupported codec MPA" in err
