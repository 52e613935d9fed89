"""The systemd units pass `systemd-analyze verify` and keep the settings the Jetson needs."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
INSTALLED_EDGE = "/opt/edge/.venv/bin/edge"       # where deploy/ installs the package


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if match:
            settings.setdefault(match.group(1), []).append(match.group(2))
    return settings


@pytest.mark.parametrize("name, command", [("edge.service", "run"), ("edge-offshore.service", "subscribe")])
def test_unit_keeps_the_settings_the_service_needs(name, command):
    settings = unit_settings((UNITS / name).read_text())
    assert settings["Type"] == ["notify"]
    assert settings["Restart"] == ["on-failure"]
    assert float(settings["WatchdogSec"][0]) > 0
    assert settings["RequiresMountsFor"]
    assert settings["SupplementaryGroups"] == ["video render"]
    assert "PrivateDevices" not in settings                        # it would hide /dev/nvmap
    assert settings["ExecStart"][0].split()[:2] == [INSTALLED_EDGE, command]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd)")
def test_units_pass_systemd_analyze_verify(tmp_path):
    """Verified as installed: the ExecStart binary is pointed at this environment's `edge`
    (verify checks that it exists), nothing else is changed."""
    edge = Path(sys.executable).with_name("edge")
    assert edge.exists(), "the package is not installed in this environment (pip install -e .)"
    copies = []
    for unit in sorted(UNITS.glob("*.service")):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_EDGE, str(edge)))
        copies.append(str(copy))
    result = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    # verify exits 0 even for unknown keys: any message about our units is a failure too.
    assert result.returncode == 0 and not output, output
