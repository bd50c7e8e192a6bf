"""Config files for the daemon's tests, written as YAML like a person would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

API_KEY_VARIABLE = "OMNISYNC_TEST_API_KEY"


@dataclass(frozen=True)
class ExportYaml:
    name: str
    schedule: str | None = "every: 1h"  # YAML flow body of the schedule, or None (on demand)
    enabled: bool = True
    tag: str | None = None
    segment: str = "everyone"
    city_column: str | None = None


@dataclass(frozen=True)
class ConfigYaml:
    state_dir: Path
    source_path: Path
    base_url: str = "http://127.0.0.1:9/api"
    exports: tuple[ExportYaml, ...] = ()
    debounce: str = "200ms"
    api_key: str = f"{{env: {API_KEY_VARIABLE}}}"
    extra_daemon: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        lines = [
            "version: 1",
            "users:",
            "  olena: {role: admin}",
            "sources:",
            f"  cdp: {{kind: sqlite, path: {json.dumps(str(self.source_path))}}}",
            "segments:",
            "  everyone: {source: cdp, query: 'SELECT email, city FROM customers'}",
            "  some: {source: cdp, query: 'SELECT email, city FROM customers WHERE id % 2 = 0'}",
            "connections:",
            "  main:",
            "    kind: omnisend",
            "    display_name: Main store",
            f"    api_key: {self.api_key}",
            "    data_transfer_accepted: true",
            f"    base_url: {self.base_url}",
            "daemon:",
            f"  state_dir: {json.dumps(str(self.state_dir))}",
            "  control: {listen: '127.0.0.1:0'}",
            "  log_format: json",
            f"  reload_debounce: {self.debounce}",
        ]
        for key, value in self.extra_daemon.items():
            lines.append(f"  {key}: {value}")
        if self.exports:
            lines.append("exports:")
        for export in self.exports:
            lines += [
                f"  {export.name}:",
                f"    segment: {export.segment}",
                "    connection: main",
                "    owner: olena",
                f"    tag: {export.tag or export.name}",
                f"    enabled: {'true' if export.enabled else 'false'}",
                "    mapping:",
                "      email: email",
            ]
            if export.city_column:
                lines.append(f"      city: {export.city_column}")
            if export.schedule is not None:
                lines.append(f"    schedule: {{{export.schedule}}}")
        return "\n".join(lines) + "\n"
