"""README.md's service install, followed step by step in a scratch root.

The steps are read from the README itself (between the ``service-install``
markers) and run with bash, as written, except that:

- every absolute path they name (``/opt/omnisync``, ``/etc/omnisync``,
  ``/etc/systemd/system``) lives under a scratch root instead of ``/``;
- ``<your config repository>`` is a local git repository holding a config as
  the README describes it (the credential key, the state directory);
- ``pip install`` gets ``--no-deps`` (and ``--no-index --no-build-isolation``
  when hatchling is importable here): the venv borrows this environment's
  dependencies through a ``.pth`` file instead of downloading them, so the
  step stays fast; omnisync itself is built from the checkout as a wheel;
- the installed unit's paths are pointed into the scratch root;
- the steps stop before ``systemctl``, which needs a running systemd manager:
  the last one run is ``systemd-analyze verify`` on the installed unit.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.daemon.yamlconfig import ConfigYaml, ExportYaml

CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
SCHEMA = CHECKOUT / "schemas" / "omnisync.schema.json"
#: The absolute paths the README's steps use, most specific first.
SYSTEM_PATHS = ("/opt/omnisync", "/etc/systemd/system", "/etc/omnisync")

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed: the steps end with `systemd-analyze verify`",
)


def readme_steps() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = re.search(
        r"<!-- service-install:start[^>]*-->\s*```sh\n(.*?)```\s*<!-- service-install:end -->",
        text,
        re.DOTALL,
    )
    assert section is not None, "README.md has no service-install block"
    return [line for line in section.group(1).splitlines() if line.strip()]


def test_the_readme_steps_install_omnisync_its_key_and_its_state_dir():
    steps = readme_steps()
    text = README.read_text(encoding="utf-8")
    assert steps[0] == "python3 -m venv /opt/omnisync"
    assert steps[1].startswith("/opt/omnisync/bin/pip install ")
    assert any("/etc/omnisync/credentials/omnisend-api-key" in step for step in steps)
    assert any(step.startswith("systemd-analyze verify ") for step in steps)
    unit = (CHECKOUT / "systemd" / "omnisync.service").read_text()
    assert "ExecStart=/opt/omnisync/bin/omnisync daemon --config /etc/omnisync" in unit
    assert "LoadCredential=omnisend-api-key:/etc/omnisync/credentials/omnisend-api-key" in unit
    assert "StateDirectory=omnisync" in unit
    assert "api_key: {credential: omnisend-api-key}" in text
    assert "state_dir: /var/lib/omnisync" in text


def config_repository(path: Path) -> Path:
    """A config repository as the README describes it, committed."""
    path.mkdir()
    config = ConfigYaml(
        state_dir=Path("/var/lib/omnisync"),
        source_path=Path("/srv/cdp.sqlite"),
        api_key="{credential: omnisend-api-key}",
        exports=(ExportYaml("weekly", schedule="every: 15m"),),
    )
    (path / "omnisync.yaml").write_text(config.render())
    (path / ".gitignore").write_text("credentials/\n")
    for arguments in (
        ["init", "--quiet"],
        ["add", "."],
        ["-c", "user.name=Ops", "-c", "user.email=ops@example.com", "commit", "--quiet", "-m", "c"],
    ):
        subprocess.run(["git", *arguments], cwd=path, check=True, capture_output=True)
    return path


def scratch(step: str, root: Path, repository: Path) -> str:
    for path in SYSTEM_PATHS:
        step = re.sub(rf"(?<![\w/.]){re.escape(path)}", f"{root}{path}", step)
    return step.replace("<your config repository>", str(repository))


@pytest.mark.long(10)
def test_following_the_readme_in_a_scratch_root_ends_with_a_verified_unit(tmp_path):
    root = tmp_path / "root"
    for directory in ("opt", "etc/systemd/system"):
        (root / directory).mkdir(parents=True)
    repository = config_repository(tmp_path / "config-repo")
    environment = {
        **os.environ,
        "OMNISEND_API_KEY": "scratch-install-key-0123456789",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    environment.pop("OMNISYNC_CONFIG", None)
    offline = importlib.util.find_spec("hatchling") is not None
    venv = root / "opt" / "omnisync"
    unit = root / "etc" / "systemd" / "system" / "omnisync.service"
    ran: list[str] = []
    for step in readme_steps():
        if step.startswith("systemctl "):
            break  # needs a running systemd manager: the scratch root ends here
        command = scratch(step, root, repository)
        if " -m venv " in step:
            command = command.replace("python3 -m venv", f"{sys.executable} -m venv", 1)
        if "/bin/pip install " in step:
            command += " --quiet --no-deps"
            if offline:
                command += " --no-index --no-build-isolation"
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=CHECKOUT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        unbuildable = "hatchling" in result.stdout + result.stderr
        if result.returncode != 0 and "/bin/pip install " in step and unbuildable and not offline:
            pytest.skip(f"cannot build the wheel here (hatchling unavailable): {command}")
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        ran.append(step)
        if " -m venv " in step:
            # The dependencies come from this environment instead of the network.
            purelib = subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-c",
                    "import sysconfig; print(sysconfig.get_path('purelib'))",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            (Path(purelib) / "zz-test-dependencies.pth").write_text(
                sysconfig.get_path("purelib") + "\n"
            )
        if step.startswith("install ") and "omnisync.service" in step:
            # The scratch root stands in for /: so do the unit's paths.
            unit.write_text(scratch(unit.read_text(), root, repository))
    assert ran[-1].startswith("systemd-analyze verify "), ran
    assert (venv / "bin" / "omnisync").is_file() and os.access(venv / "bin" / "omnisync", os.X_OK)
    assert f"ExecStart={venv}/bin/omnisync daemon --config {root}/etc/omnisync" in unit.read_text()
    key = root / "etc" / "omnisync" / "credentials" / "omnisend-api-key"
    assert key.read_text().strip() == environment["OMNISEND_API_KEY"]
    assert key.stat().st_mode & 0o777 == 0o600
    # The installed omnisync is a real install, not this checkout: its schema is the wheel's.
    schema = subprocess.run(
        [str(venv / "bin" / "omnisync"), "schema"], capture_output=True, check=False, cwd=tmp_path
    )
    assert schema.returncode == 0, schema.stderr
    assert schema.stdout == SCHEMA.read_bytes()
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import omnisync; print(omnisync.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert located.startswith(str(venv)), located
