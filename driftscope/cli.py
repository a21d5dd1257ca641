"""The operator CLI: one Typer app; each command group lives in ``driftscope/commands/``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="driftscope",
    help="Keep microscope-image segmentation models healthy in production.\n\n"
    "Example: driftscope demo",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    app()
