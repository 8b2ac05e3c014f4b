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
