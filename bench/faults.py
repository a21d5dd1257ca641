"""Run every fault and hostile-input test and write the reliability table (docs/reliability.md).

Each test counts what it published against what reached the store (distinct ids) and fails on any
loss or duplicate, so a passing test *is* "lost: 0". This command runs them, reads pytest's JUnit
report, and prints (and writes) one row per fault with its outcome, duration, and the figures the
test printed on a ``measured:`` line (peak memory, records paused, dead-lettered):

    .venv/bin/python bench/faults.py            # runs the tests (~10 min), writes docs/reliability.md
    .venv/bin/python bench/faults.py --json     # one JSON line instead of the table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (fault or input, what is counted, pytest node id)
FAULTS: list[tuple[str, str, str]] = [
    ("worker SIGKILLed mid-stream, then restarted", "30 images: predictions/fingerprints/images once each",
     "tests/fault/test_process_faults.py::test_a_worker_killed_mid_stream_and_restarted_loses_nothing"),
    ("one of three workers SIGKILLed (6 partitions)", "every image once after its partitions move",
     "tests/integration/deploy/test_scale_out.py::test_three_workers_share_partitions_and_survive_a_kill"),
    ("broker SIGSTOPped for 30 s, then SIGCONT", "30 images once each; the worker stays up",
     "tests/fault/test_process_faults.py::test_the_broker_frozen_for_30_s_then_resumed_loses_nothing"),
    ("ClickHouse server stopped during streaming, then started", "24 images once each; the sink pauses",
     "tests/e2e/test_store_outage.py::test_a_store_outage_pauses_the_sink_and_loses_nothing"),
    ("ClickHouse server stopped for 60 s under 12 images/s, then started",
     "every image once; consumption pauses; peak RSS within 96 MiB of before",
     "tests/fault/test_store_down_60s.py::"
     "test_clickhouse_down_for_60_s_under_load_pauses_the_sink_loses_nothing_and_memory_stays_bounded"),
    ("ClickHouse server down under the sink (step level)", "every batch written once after recovery",
     "tests/integration/streams/test_sink.py::test_a_down_server_pauses_the_sink_until_it_is_back_and_nothing_is_lost"),
    ("blob store unwritable for a while", "30 images once each; no good image dead-lettered",
     "tests/fault/test_process_faults.py::test_an_unwritable_blob_store_pauses_the_worker_and_loses_nothing"),
    ("trainer SIGKILLed mid-run", "the request redelivered and run once",
     "tests/integration/trainer/test_training_worker.py::test_trainer_killed_mid_run_completes_the_request_once"),
    ("the same retrain request delivered twice", "one run, one run event id",
     "tests/integration/trainer/test_training_worker.py::test_same_request_twice_runs_once_and_garbage_goes_to_dlq"),
    ("corrupt model artifact / hash mismatch", "refused; the old model keeps serving",
     "tests/integration/streams/test_hot_swap.py::test_a_corrupt_artifact_is_refused_and_the_old_model_keeps_serving"),
    ("malformed images.raw (garbage, version, truncated, dtype, empty)", "24 valid stored once; 6 in the DLQ",
     "tests/e2e/test_pipeline.py::test_clickhouse_server_stores_every_image_once_and_dead_letters_malformed"),
    ("1,000 generated malformed messages per input topic (steps)", "every message processed or dead-lettered",
     "tests/fault/test_fuzz_inputs.py::test_malformed_messages_are_dead_lettered_and_nothing_crashes"),
    ("1,000 generated malformed messages per input topic and the hostile images, through a worker over Kafka",
     "each in `<topic>.dlq` once with a reason; valid images once; worker up; peak RSS within 96 MiB",
     "tests/fault/test_worker_fuzz.py::test_a_worker_dead_letters_every_malformed_message_with_its_reason_and_stays_up"),
    ("hostile images: zero-size, 1x1, 1x2048, 100000x1, 16k x 16k claim, NaN, Inf, 17 channels, channel names, "
     "pixels vs header, zstd bomb, 3 channels for a 1-channel model",
     "each dead-lettered by every step with its reason",
     "tests/fault/test_fuzz_inputs.py::test_hostile_images_are_dead_lettered_with_their_reason"),
    ("a 16k x 16k header over a payload that inflates to 512 MiB", "refused with < 4 MiB allocated",
     "tests/unit/schemas/test_image_limits.py::test_a_huge_claim_is_refused_before_anything_is_decompressed"),
    ("images at the contract limits (16x16, 16x2048, float32, HxWx1)", "processed by every step",
     "tests/fault/test_fuzz_inputs.py::test_images_at_the_contract_limits_are_processed"),
    ("secrets in the configuration, connections failing", "no secret in any output or log",
     "tests/fault/test_secrets_never_printed.py::test_commands_failing_to_connect_print_no_secret"),
]


def run(junit: Path) -> int:
    nodes = [node for _, _, node in FAULTS]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "-o", "junit_logging=system-out", *nodes]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def outcomes(junit: Path) -> dict[str, tuple[str, float, int, str]]:
    """Per test function: (worst outcome, seconds, cases, measured figures) from the JUnit report."""
    found: dict[str, tuple[str, float, int, str]] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("name", "").split("[")[0]
        status = "failed" if case.find("failure") is not None or case.find("error") is not None else (
            "skipped" if case.find("skipped") is not None else "passed")
        old = found.get(name, ("passed", 0.0, 0, ""))
        worst = max(old[0], status, key=["passed", "skipped", "failed"].index)
        measured = "; ".join(filter(None, [old[3], *_measured(case.findtext("system-out") or "")]))
        found[name] = (worst, old[1] + float(case.get("time", 0)), old[2] + 1, measured)
    return found


def _measured(output: str) -> list[str]:
    """The figures a test printed as ``measured: ...`` lines."""
    return [line.split("measured:", 1)[1].strip() for line in output.splitlines() if line.startswith("measured:")]


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| fault or input | counted | outcome | lost | seconds | measured |", "|---|---|---|---|---|---|"]
    for row in rows:
        lost = "0" if row["outcome"] == "passed" else "see test"
        lines.append(f"| {row['fault']} | {row['counted']} | {row['outcome']} | {lost} | {row['seconds']:.0f} "
                     f"| {row['measured'] or '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md", help="where to write the table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "faults.xml"
        code = run(junit)
        results = outcomes(junit)
    rows: list[dict[str, object]] = []
    for fault, counted, node in FAULTS:
        outcome, seconds, _, measured = results.get(node.split("::")[1], ("not run", 0.0, 0, ""))
        rows.append({"fault": fault, "counted": counted, "outcome": outcome, "seconds": seconds,
                     "measured": measured, "test": node})
    if args.json:
        print(json.dumps({"faults": rows, "all_passed": code == 0}))
    else:
        print(table(rows))
    args.out.write_text(
        "# Reliability: faults and inputs tried\n\n"
        "Made by `.venv/bin/python bench/faults.py`, which runs the tests named below against real\n"
        "processes (Tansu broker, clickhouse-server 18.16, chDB, worker and trainer processes). Each test\n"
        "fails on any lost or duplicated record, so `passed` means nothing was lost.\n\n"
        + table(rows) + "\n\n| fault or input | test |\n|---|---|\n"
        + "\n".join(f"| {r['fault']} | `{r['test']}` |" for r in rows) + "\n"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
