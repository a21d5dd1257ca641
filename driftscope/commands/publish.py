"""``driftscope publish | watch | simulate``: put images on ``images.raw`` from files, a folder, or a simulation.

Progress goes to stderr, results to stdout (a table, or one JSON object with ``--json``).
Exit codes: 0 all published; 1 some files unreadable or messages not delivered; 3 no broker.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import sha1
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from driftscope.commands.clients import ExitCode, Unavailable, kafka_config, resolve_settings
from driftscope.settings import Settings
from producers.kafka import EventProducer, PublishError
from schemas.blobstore import BlobStore

if TYPE_CHECKING:
    from producers.publish import PublishedFile
    from producers.watcher import FolderWatcher, ScanResult

# The image readers (tifffile, imageio, scikit-image) and the generator (scipy) are imported by the
# commands that use them: together they take seconds, and `driftscope --help` should not wait.
IMAGE_TOPIC = "images.raw"
LABEL_TOPIC = "labels"
_DRIFT_NAMES = "illumination, defocus, noise, contrast, density, morphology, scale, dataset"

__all__ = ["publish", "simulate", "watch"]

stdout = Console()
stderr = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME or ~/.driftscope)", show_default=False),
]
InstrumentOption = Annotated[str, typer.Option("--instrument", "-i", help="instrument id: the Kafka key")]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object with the outcome, nothing else")]
TopicOption = Annotated[str, typer.Option(help="topic to publish to")]


def _fail(code: ExitCode, message: str) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(int(code))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True,
    )  # fmt: skip


def _connect(home: Path | None, *topics: str) -> tuple[Settings, dict[str, Any]]:
    settings = resolve_settings(home)
    try:
        return settings, kafka_config(settings, topics=topics)
    except Unavailable as exc:
        raise _fail(ExitCode.UNAVAILABLE, str(exc)) from None


def _blob_store(settings: Settings) -> BlobStore:
    return BlobStore(settings.resolved_blob_url)


def publish(
    paths: Annotated[
        list[Path], typer.Argument(help="image files or folders (searched recursively)", show_default=False)
    ],
    instrument: InstrumentOption,
    experiment: Annotated[str | None, typer.Option(help="experiment name recorded with every image")] = None,
    plate: Annotated[str | None, typer.Option(help="plate id recorded with every image")] = None,
    well: Annotated[str | None, typer.Option(help="well id recorded with every image")] = None,
    topic: TopicOption = IMAGE_TOPIC,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish TIFF, OME-TIFF and PNG files (in name order) as images of one instrument.

    Multi-page TIFFs give one image per plane; large images go to the blob store (claim check).

    Exit codes: 0 all published, 1 a file was unreadable or an image not acknowledged, 3 no broker.

    Example: driftscope publish plate1/ extra.ome.tif --instrument scope-3 --experiment screen-42
    """
    from producers.files import ImageFileError, expand_paths
    from producers.publish import FilePublisher

    try:
        files = expand_paths(paths)
    except ImageFileError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    if not files:
        raise _fail(ExitCode.USAGE, "no TIFF, OME-TIFF or PNG files found in the paths given")
    settings, conf = _connect(home, topic)
    published: list[PublishedFile] = []
    refused: list[tuple[Path, str]] = []
    producer = EventProducer(conf)
    publisher = FilePublisher(
        producer, instrument, _blob_store(settings), settings.claim_check_threshold_bytes, topic,
        experiment=experiment, plate=plate, well=well,
    )  # fmt: skip
    try:
        with _progress() as progress:
            task = progress.add_task(f"publishing to {topic}", total=len(files))
            for path in files:
                try:
                    published.append(publisher.publish(path))
                except ImageFileError as exc:
                    refused.append((path, str(exc)))
                progress.advance(task)
            progress.update(task, description="waiting for the broker to acknowledge")
            producer.flush()
    except PublishError as exc:
        _report_publish(published, refused, topic, as_json, error=str(exc))
        raise typer.Exit(int(ExitCode.FAILED)) from None
    _report_publish(published, refused, topic, as_json)
    if refused:
        raise typer.Exit(int(ExitCode.FAILED))


def _report_publish(
    published: list[PublishedFile], refused: list[tuple[Path, str]], topic: str, as_json: bool, error: str | None = None
) -> None:
    images = sum(len(p.image_ids) for p in published)
    claim_checked = sum(p.claim_checked for p in published)
    if as_json:
        print(json.dumps({
            "topic": topic, "files": len(published), "images": images if error is None else 0,
            "claim_checked": claim_checked, "refused": [{"path": str(p), "error": e} for p, e in refused],
            "error": error,
        }))  # fmt: skip
        return
    if error is not None:
        stderr.print(f"[red]publish failed:[/red] {error}", highlight=False)
        return
    stdout.print(f"published {images} images from {len(published)} files to {topic} "
                 f"({claim_checked} claim-checked)", highlight=False)
    if refused:
        table = Table("refused file", "reason", title=f"{len(refused)} files not published")
        for path, reason in refused:
            table.add_row(str(path), reason)
        stderr.print(table)


@contextmanager
def _until_signal() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, so long-running commands finish their current step cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _default_ledger(settings: Settings, directory: Path, instrument: str) -> Path:
    tag = sha1(str(directory.resolve()).encode()).hexdigest()[:12]
    return settings.home / "watch" / f"{instrument}-{tag}.jsonl"


def watch(
    directory: Annotated[Path, typer.Argument(help="the instrument's output folder", show_default=False)],
    instrument: InstrumentOption,
    settle: Annotated[float, typer.Option(min=0.1, help="seconds a file must stay unchanged before it is read")] = 2.0,
    poll: Annotated[float, typer.Option(min=0.05, help="seconds between scans")] = 1.0,
    ledger: Annotated[
        Path | None, typer.Option(help="record of published files (default: <home>/watch/<instrument>-<hash>.jsonl)")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="publish what is ready now, then exit (for cron)")] = False,
    experiment: Annotated[str | None, typer.Option(help="experiment name recorded with every image")] = None,
    topic: TopicOption = IMAGE_TOPIC,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line per published or refused file")] = False,
) -> None:
    """Watch an instrument's output folder and publish every new image file exactly once.

    A file is read only once its size and mtime stayed unchanged for --settle seconds (never half-written).

    The ledger remembers what was published, across restarts; an unreadable file is reported once and skipped.

    Runs until Ctrl-C (or, with --once, publishes what is ready and exits).

    Example: driftscope watch /data/scope-3/out --instrument scope-3 --settle 5
    """
    from producers.publish import FilePublisher
    from producers.watcher import FolderWatcher, LedgerBusy, WatchLedger

    if not directory.is_dir():
        raise _fail(ExitCode.USAGE, f"{directory} is not a folder")
    settings, conf = _connect(home, topic)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ledger_path = ledger or _default_ledger(settings, directory, instrument)
    try:
        record = WatchLedger(ledger_path)
    except LedgerBusy as exc:
        raise _fail(ExitCode.FAILED, str(exc)) from None
    producer = EventProducer(conf)
    publisher = FilePublisher(producer, instrument, _blob_store(settings), settings.claim_check_threshold_bytes, topic,
                              experiment=experiment)
    watcher = FolderWatcher(directory, publisher, record, settle_s=settle)

    def show(result: ScanResult) -> None:
        for item in result.published:
            if as_json:
                print(json.dumps({"published": str(item.path), "images": item.image_ids}), flush=True)
            else:
                stdout.print(f"published {item.path} ({len(item.image_ids)} images)", highlight=False)
        for path, reason in result.refused:
            if as_json:
                print(json.dumps({"refused": str(path), "error": reason}), flush=True)
            else:
                stderr.print(f"[yellow]refused[/yellow] {path}: {reason}", highlight=False)

    try:
        if once:
            _watch_once(watcher, settle, show)
            return
        if not as_json:
            stderr.print(f"watching {directory} for {instrument} (ledger {ledger_path}); Ctrl-C to stop",
                         highlight=False)
        with _until_signal() as stop:
            watcher.run(stop, poll_s=poll, on_scan=show)
    except PublishError as exc:
        raise _fail(ExitCode.FAILED, str(exc)) from None
    finally:
        record.close()


def _watch_once(watcher: FolderWatcher, settle: float, show: Callable[[ScanResult], None]) -> None:
    """Two scans ``settle`` apart: the first sees the files, the second publishes those that did not change."""
    show(watcher.scan())
    threading.Event().wait(settle)
    result = watcher.scan()
    show(result)
    if result.waiting:
        stderr.print(f"{result.waiting} files still changing; run again later", highlight=False)


def simulate(
    instrument: Annotated[str, typer.Option("--instrument", "-i", help="instrument id: the Kafka key")] = "synth-1",
    count: Annotated[int, typer.Option(min=0, help="images to publish (0: until Ctrl-C)")] = 100,
    rate: Annotated[float, typer.Option(min=0, help="images per second (0: as fast as possible)")] = 2.0,
    drift: Annotated[
        str, typer.Option(help="drift schedule: name:severity@image[+ramp], comma-separated; names: "
                          + _DRIFT_NAMES)
    ] = "",
    label_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="fraction of images whose ground-truth mask is published")
    ] = 0.0,
    label_delay: Annotated[int, typer.Option(min=0, help="images between an image and its label")] = 0,
    size: Annotated[int, typer.Option(min=32, max=4096, help="image height and width, pixels")] = 256,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same images")] = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the synthetic instrument: generated nuclei images whose acquisition drifts on schedule.

    Image i is reproducible from --seed whatever the rate; --count 0 runs until Ctrl-C.

    With --label-fraction, that share of images also gets its ground-truth mask on `labels`, --label-delay later.

    Example: driftscope simulate --count 600 --rate 5 --drift "defocus:0.6@300+50" --label-fraction 0.1
    """
    from models.data.drift import DriftSchedule
    from models.data.synthetic import SyntheticSpec
    from producers.instrument import InstrumentConfig, SyntheticInstrument

    try:
        schedule = DriftSchedule.parse(drift)
        config = InstrumentConfig(instrument_id=instrument, spec=SyntheticSpec(size=(size, size)),
                                  schedule=schedule, label_fraction=label_fraction, label_delay=label_delay,
                                  seed=seed)
    except ValueError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    settings, conf = _connect(home, IMAGE_TOPIC, LABEL_TOPIC)
    producer = EventProducer(conf)
    with _progress() as progress, _until_signal() as stop:
        task = progress.add_task(f"simulating {instrument}", total=count or None)
        try:
            report = SyntheticInstrument(config).run(
                producer, count=count or None, rate=rate or None, store=_blob_store(settings),
                threshold_bytes=settings.claim_check_threshold_bytes, stop=stop,
                on_image=lambda r: progress.update(task, completed=r.images),
            )  # fmt: skip
        except PublishError as exc:
            raise _fail(ExitCode.FAILED, str(exc)) from None
    outcome = {"instrument": instrument, "run_id": config.run_id, "images": report.images, "labels": report.labels,
               "claim_checked": report.claim_checked, "drift_onset": report.drift_onset}
    if as_json:
        print(json.dumps(outcome))
    else:
        onset = "no drift" if report.drift_onset is None else f"drift from image {report.drift_onset}"
        stdout.print(f"published {report.images} images and {report.labels} labels from {instrument} "
                     f"(run {config.run_id}, {onset})", highlight=False)
