"""``systemd-analyze verify`` accepts the unit as written: no unknown key, no bad value
(a misspelt hardening key would otherwise be ignored by systemd with a log line)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "conf" / "ecsm-operator.service"


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    shutil.copyfile(UNIT, unit)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
