"""The operator CLI: one Typer app; each command group lives in ``driftscope/commands/``."""

from __future__ import annotations

import typer

from driftscope.commands import stack as stack_commands

app = typer.Typer(
    name="driftscope",
    help="Keep microscope-image segmentation models healthy in production.\n\n"
    "Example: driftscope demo",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack_commands.app, name="stack")


def main() -> None:
    app()
