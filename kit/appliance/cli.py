"""``fieldkit appliance ...``: what the systemd units and the image run."""

import click


@click.group("appliance")
def appliance() -> None:
    """Appliance tasks run by systemd units and the image.

    \b
    Example:
      fieldkit appliance --help
    """
