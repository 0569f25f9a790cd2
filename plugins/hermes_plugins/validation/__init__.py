"""``hermes validate`` and ``hermes calibrate``: measure hermes against measured data and fit
device parameters from it. Registered through ``hermes_register_commands``."""

from __future__ import annotations

import click

from hermes_core import hookimpl


@click.group("validate")
def validate() -> None:
    """Compare hermes's predictions with measured data (prints APE tables, writes CSV)."""


@hookimpl
def hermes_register_commands(cli):
    """Add ``validate`` (ops, collectives, serving) and ``calibrate``."""
    from .calibrate import calibrate_command
    from .collectives import collectives_command
    from .ops import ops_command
    from .serving import serving_command

    validate.add_command(ops_command)
    validate.add_command(collectives_command)
    validate.add_command(serving_command)
    cli.add_command(validate)
    cli.add_command(calibrate_command)
