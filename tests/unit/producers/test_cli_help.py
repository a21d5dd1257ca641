"""Every command this area adds says what it does, with an example, in its --help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from driftscope.cli import app

COMMANDS = ["publish", "watch", "simulate", "replay", "query", "status", "report", "segment", "worker", "trainer",
            "demo", "label", "label-dataset", "stack", "stack up", "stack down", "stack status", "models",
            "models list", "models show", "models promote", "models rollback"]


def test_top_level_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command.split()[0] in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_a_description_and_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Example: driftscope {command.split()[0]}" in result.output


def test_bad_time_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["replay", "--topic", "images.raw", "--from", "yesterday-ish"])
    assert result.exit_code == 2


def test_cli_constants_match_their_sources() -> None:
    # Kept as literals so `driftscope --help` does not import the image stack; they must not drift apart.
    from driftscope.commands import publish
    from models.data.drift import DRIFTS
    from producers import instrument
    from producers.publish import IMAGE_TOPIC

    assert ", ".join(DRIFTS) == publish._DRIFT_NAMES
    assert (publish.IMAGE_TOPIC, publish.LABEL_TOPIC) == (IMAGE_TOPIC, instrument.LABEL_TOPIC)
