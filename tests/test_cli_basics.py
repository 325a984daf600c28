import subprocess
import sys

from typer.testing import CliRunner

import onebyone
from onebyone.cli import app
from onebyone.cli._common import parse_shape

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"onebyone {onebyone.__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.stdout


def test_python_dash_m_is_the_same_program():
    out = subprocess.run(
        [sys.executable, "-m", "onebyone", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"onebyone {onebyone.__version__}"


def test_parse_shape():
    assert parse_shape("3x32x32") == (3, 32, 32)
    assert parse_shape("1, 28, 28") == (1, 28, 28)
    for bad in ["", "3x", "ax3", "3x0x4", "-1x2"]:
        try:
            parse_shape(bad)
        except ValueError as e:
            assert "--input" in str(e)
        else:
            raise AssertionError(f"{bad!r} was accepted")
