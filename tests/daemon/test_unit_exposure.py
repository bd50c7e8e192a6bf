"""The unit's hardening stays where it is: ``systemd-analyze security`` rates it at most 1.2."""

from __future__ import annotations

import re
import subprocess

from tests.daemon.test_systemd_unit import installable_copy, needs_systemd_analyze


@needs_systemd_analyze
def test_the_unit_is_rated_at_most_1_2(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(installable_copy(tmp_path))],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.2, result.stdout
