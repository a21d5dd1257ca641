"""The operator CLI: one Typer app; each command group lives in ``driftscope/commands/``."""

from __future__ import annotations

import typer

from driftscope.commands import models as models_commands
from driftscope.commands import publish as publish_commands
from driftscope.commands import stack as stack_commands
from driftscope.commands.demo import demo as demo_command
from driftscope.commands.label import label as label_command
from driftscope.commands.label import label_dataset as label_dataset_command
from driftscope.commands.query import query as query_command
from driftscope.commands.replay import replay_command
from driftscope.commands.report import report as report_command
from driftscope.commands.status import status as status_command
from driftscope.commands.trainer import trainer as trainer_command
from driftscope.commands.worker import worker as worker_command

app = typer.Typer(
    name="driftscope",
    help="Keep microscope-image segmentation models healthy in production.\n\n"
    "Example: driftscope demo",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack_commands.app, name="stack")
app.add_typer(models_commands.app, name="models")
app.command("segment")(models_commands.segment)
app.command("publish")(publish_commands.publish)
app.command("watch")(publish_commands.watch)
app.command("simulate")(publish_commands.simulate)
app.command("replay")(replay_command)
app.command("query")(query_command)
app.command("status")(status_command)
app.command("report")(report_command)
app.command("worker")(worker_command)
app.command("trainer")(trainer_command)
app.command("demo")(demo_command)
app.command("label")(label_command)
app.command("label-dataset")(label_dataset_command)


def main() -> None:
    app()
