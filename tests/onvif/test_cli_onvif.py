"""The `onvif` verb and the simulator's ONVIF options on the command line."""

import subprocess
import sys

import pytest

from opticlink.cli import _onvif, build_parser


@pytest.mark.parametrize("argv", [["onvif", "--help"], ["onvif", "discover", "--help"], ["onvif", "import", "--help"]])
def test_onvif_verbs_have_help(argv):
    result = subprocess.run([sys.executable, "-m", "opticlink", *argv], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: opticlink onvif" in result.stdout


def test_sim_takes_onvif_options_with_the_standard_discovery_port_by_default():
    args = build_parser().parse_args(["sim", "--onvif"])
    assert (args.onvif, args.onvif_port, args.discovery_port) == (True, 8000, 3702)
    args = build_parser().parse_args(["sim", "--onvif", "--onvif-port", "0", "--discovery-port", "0"])
    assert (args.onvif_port, args.discovery_port) == (0, 0)
    assert not build_parser().parse_args(["sim"]).onvif


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:", ":3702", "127.0.0.1:99999", "127.0.0.1:x"])
async def test_a_bad_discovery_address_is_a_clear_error(address):
    args = build_parser().parse_args(["onvif", "discover", "--address", address, "--timeout", "0.1"])
    with pytest.raises(ValueError, match="--address takes HOST:PORT"):
        await _onvif(args)
