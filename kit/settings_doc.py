"""Writes docs/settings.md from the declarations, so the reference can never drift from the code.

Run: ``python -m kit.settings_doc > docs/settings.md`` (a test fails when the file is stale).
"""

from __future__ import annotations

import json

from kit.config import all_settings


def render() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from the declarations by `python -m kit.settings_doc > docs/settings.md`; do not edit by hand.",
        "",
        "Each setting can be set in `kit.toml` (image-wide), in the lead's `fieldkit.toml` (per kit, on the boot",
        "partition) or in an environment variable; later layers win. `fieldkit config show` prints the effective",
        "value of each and where it came from. In a TOML file, `pos.printer.backend` is `backend` under `[pos.printer]`.",
        "",
        "| setting | default | environment variable | meaning |",
        "|---|---|---|---|",
    ]
    for key, s in sorted(all_settings().items()):
        default = "(secret)" if s.secret and s.default else json.dumps(s.default)
        choices = f" One of: {', '.join(s.choices)}." if s.choices else ""
        lines.append(f"| `{key}` | `{default}` | `{s.env_name}` | {s.help.replace('|', '/')}{choices} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
