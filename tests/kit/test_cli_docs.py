"""Every CLI command has help with an example, and the README or docs/ mention every command."""

from pathlib import Path

import click

from kit.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def all_commands(group: click.Group, prefix: str = "fieldkit") -> dict[str, click.Command]:
    ctx = click.Context(group)
    found = {}
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        full = f"{prefix} {name}"
        found[full] = cmd
        if isinstance(cmd, click.Group):
            found.update(all_commands(cmd, full))
    return found


def test_every_command_has_help_with_an_example():
    missing = [name for name, cmd in all_commands(cli).items() if "Example:" not in (cmd.help or "")]
    assert missing == [], f"commands without an Example in their help: {missing}"


def test_readme_or_docs_mention_every_command():
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing = [name for name in all_commands(cli) if name not in text]
    assert missing == [], f"commands not mentioned in README.md or docs/*.md: {missing}"


def test_settings_reference_is_up_to_date():
    from kit.settings_doc import render

    assert (ROOT / "docs" / "settings.md").read_text() == render(), \
        "docs/settings.md is stale: run `python -m kit.settings_doc > docs/settings.md`"
