"""Drift benchmark: detection delay per shift type and severity, false alarms per 10,000 images.

Runs the real drift logic (:class:`streams.drift.DriftMonitor`) on the synthetic instrument
(``models.data``) through :mod:`streams.drift.evaluation`, which builds the events the drift agent
sees: real image statistics, and the served ONNX encoder's latent and reconstruction error and the
served U-Net's prediction fields (the baseline artifacts, through the registry, computed by the same
functions the fingerprint and segment steps call). ``--stand-in-models`` swaps both models for
the cheap stand-ins of that module (a random-projection encoder, ground-truth masks) for quick
experiments on the detectors.

- False alarms: ``--fa-images`` in-distribution images split into ``--fa-streams`` streams, each
  with its own reference window (a false-alarm rate measured against one reference would only say
  how lucky that reference was). Every drift event after the reference window is a false alarm.
- Detection: per trial, an in-distribution prefix (reference window + ``--warmup`` images) is
  replayed once and checkpointed; for each shift type and severity the checkpoint is restored (the
  ``state_dict`` round trip the agent relies on) and shifted images are fed until the first drift
  event or ``--horizon`` images. Delay 1 means the first shifted image raised it.

Costs are CPU time of the calling thread per image (``time.thread_time``: a shared, loaded
machine distorts it far less than wall-clock time, and idle BLAS threads do not count). Prints a
table; ``--json`` prints one JSON line instead. ``--quick`` is a short version.
``--peers PYTHON`` also records every image's raw signal values (and latent) and hands the same
streams to ``bench/drift_peers/peers.py`` run by the peer venv's interpreter (Frouros, Alibi Detect,
Evidently, River; see ``bench/drift_peers/README.md``), whose figures join the report.

    .venv/bin/python bench/drift.py --quick
    .venv/bin/python bench/drift.py --quick --stand-in-models
    .venv/bin/python bench/drift.py --fa-images 10000 --json
    .venv/bin/python bench/drift.py --quick --peers /tmp/drift-peers/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.data.drift import DRIFTS, DriftSchedule, DriftSpec
from models.data.synthetic import SyntheticSpec
from streams.drift import DriftConfig, DriftMonitor, SignalConfig
from streams.drift.evaluation import ImageModels, ServedModels, StandInModels, StreamImage, replay, synthetic_stream
from streams.drift.signals import image_stat_values, prediction_values, reconstruction_value

SHIFTS = tuple(DRIFTS)
PEERS_SCRIPT = Path(__file__).resolve().parent / "drift_peers" / "peers.py"
#: The raw signals handed to the peers, one column each (NaN where an image has no value).
PEER_SIGNALS = (
    "image.p01",
    "image.p50",
    "image.p99",
    "image.std",
    "image.focus",
    "image.noise",
    "image.saturation_fraction",
    "fingerprint.reconstruction_error",
    "prediction.foreground_fraction",
    "prediction.object_count",
    "prediction.mean_confidence",
    "prediction.entropy",
    "prediction.object_area",
    "prediction.object_eccentricity",
)


class Recorder:
    """Keeps the raw signal values and latents of the streams, by name, for the peer run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.arrays: dict[str, list[list[float]]] = {}

    def record(self, name: str, images: Iterable[StreamImage]) -> Iterable[StreamImage]:
        """Pass ``images`` through, recording each one under ``name`` when enabled."""
        if not self.enabled:
            yield from images
            return
        values = self.arrays.setdefault(f"{name}/values", [])
        latents = self.arrays.setdefault(f"{name}/latent", [])
        for item in images:
            row = (
                image_stat_values(item.fingerprint.stats)
                | reconstruction_value(item.fingerprint)
                | prediction_values(item.prediction)
            )
            values.append([row.get(signal, float("nan")) for signal in PEER_SIGNALS])
            latents.append(list(item.fingerprint.latent))
            yield item

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        arrays: dict[str, Any] = {name: np.asarray(rows, dtype=np.float64) for name, rows in self.arrays.items()}
        arrays["meta"] = np.array(json.dumps({**meta, "signals": list(PEER_SIGNALS)}))
        np.savez_compressed(path, **arrays)


@dataclass
class ShiftResult:
    """Outcome of every trial of one shift type at one severity."""

    shift: str
    severity: float
    delays: list[int | None] = field(default_factory=list)
    first_signals: Counter[str] = field(default_factory=Counter)

    @property
    def detection_rate(self) -> float:
        return sum(d is not None for d in self.delays) / len(self.delays) if self.delays else 0.0

    @property
    def median_delay(self) -> float | None:
        found = [d for d in self.delays if d is not None]
        return float(statistics.median(found)) if found else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "shift": self.shift,
            "severity": self.severity,
            "trials": len(self.delays),
            "detection_rate": self.detection_rate,
            "median_delay": self.median_delay,
            "max_delay": max((d for d in self.delays if d is not None), default=None),
            "first_signals": dict(self.first_signals.most_common(3)),
        }


@dataclass
class FalseAlarms:
    """Drift events raised on in-distribution images after the reference window."""

    monitored_images: int = 0
    events: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    observe_seconds: float = 0.0
    observed_images: int = 0

    @property
    def per_10k(self) -> float:
        return 10_000.0 * self.events / self.monitored_images if self.monitored_images else 0.0

    @property
    def us_per_image(self) -> float:
        return 1e6 * self.observe_seconds / self.observed_images if self.observed_images else 0.0


def timed_replay(
    monitor: DriftMonitor, images: Iterable[StreamImage], result: FalseAlarms, monitored_from: int
) -> None:
    """Replay in-distribution images, timing only the monitor; count events after ``monitored_from``."""
    for item in images:
        start = time.thread_time()
        events = monitor.observe_fingerprint(item.fingerprint) + monitor.observe_prediction(item.prediction)
        result.observe_seconds += time.thread_time() - start
        result.observed_images += 1
        if item.index >= monitored_from:
            result.monitored_images += 1
            result.events += len(events)
            result.signals.update(e.signal for e in events)


def false_alarms(
    spec: SyntheticSpec,
    config: DriftConfig,
    images: int,
    streams: int,
    seed: int,
    recorder: Recorder,
    models: ImageModels,
) -> FalseAlarms:
    result = FalseAlarms()
    per_stream = images // streams + config.reference_size
    for stream in range(streams):
        source = recorder.record(
            f"fa/{stream}",
            synthetic_stream(spec, DriftSchedule(), per_stream, seed=seed + 1000 + stream, models=models),
        )
        timed_replay(DriftMonitor(config), source, result, monitored_from=config.reference_size)
    return result


def detection(
    spec: SyntheticSpec,
    config: DriftConfig,
    shifts: Iterable[str],
    severities: Iterable[float],
    trials: int,
    warmup: int,
    horizon: int,
    seed: int,
    recorder: Recorder,
    models: ImageModels,
) -> tuple[list[ShiftResult], int]:
    """Detection delays; also returns the false alarms raised during the in-distribution prefixes."""
    onset = config.reference_size + warmup
    results = {(s, v): ShiftResult(s, v) for s in shifts for v in severities}
    prefix_alarms = 0
    for trial in range(trials):
        monitor = DriftMonitor(config)
        prefix = synthetic_stream(spec, DriftSchedule(), onset, seed + trial, models=models)
        prefix_alarms += len(replay(monitor, recorder.record(f"det/{trial}/prefix", prefix)))
        checkpoint = json.loads(json.dumps(monitor.state_dict()))
        for (shift, severity), result in results.items():
            restored = DriftMonitor.from_state(checkpoint)
            schedule = DriftSchedule.from_pairs([(onset, DriftSpec(shift, severity))])
            shifted = recorder.record(
                f"det/{trial}/{shift}/{severity}",
                synthetic_stream(
                    spec, schedule, horizon, seed=seed + 7919 * (trial + 1), start=onset, models=models
                ),
            )
            delay = None
            for item in shifted:  # with a recorder, every shifted image is drawn: the peers see them all
                if delay is None and (found := replay(restored, [item])):
                    delay = item.index - onset + 1
                    result.first_signals.update(d.event.signal for d in found)
                if delay is not None and not recorder.enabled:
                    break
            result.delays.append(delay)
    return list(results.values()), prefix_alarms


def configured(args: argparse.Namespace) -> DriftConfig:
    """The default config, with the non-label detectors overridden from the command line."""
    base = DriftConfig(reference_size=args.reference)
    overrides = {
        key: value
        for key, value in (("allowance", args.allowance), ("threshold", args.threshold), ("clip", args.clip))
        if value is not None
    }
    if not overrides:
        return base
    signals: dict[str, SignalConfig] = {
        name: signal if name.startswith("label.") else signal.model_copy(update=overrides)
        for name, signal in base.signals.items()
    }
    return base.model_copy(update={"signals": signals})


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="small run (unless set): 2 trials, severities 0.5 and 1, 2000 FA images"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--reference", type=int, default=100, help="reference window, images")
    parser.add_argument("--fa-images", type=int, help="in-distribution images monitored for false alarms (10,000)")
    parser.add_argument("--fa-streams", type=int, help="independent references the FA images are split over (5)")
    parser.add_argument("--trials", type=int, help="detection trials per shift and severity (5)")
    parser.add_argument("--severities", help="comma-separated severities (0.25,0.5,1.0)")
    parser.add_argument("--shifts", default=",".join(SHIFTS))
    parser.add_argument("--warmup", type=int, default=50, help="in-distribution images between reference and shift")
    parser.add_argument("--horizon", type=int, default=100, help="shifted images fed before giving up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allowance", type=float, help="override every non-label signal's allowance")
    parser.add_argument("--threshold", type=float, help="override every non-label signal's threshold")
    parser.add_argument("--clip", type=float, help="override every non-label signal's clip")
    parser.add_argument(
        "--stand-in-models",
        action="store_true",
        help="random-projection encoder and ground-truth masks instead of the served ONNX models (fast)",
    )
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model session")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call")
    parser.add_argument(
        "--peers",
        metavar="PYTHON",
        action="append",
        help="an interpreter to run bench/drift_peers/peers.py with (repeatable: River runs in .venv, "
        "Frouros, Alibi Detect and Evidently in the peer venv, which pins numpy < 2)",
    )
    args = parser.parse_args(argv)
    defaults = {"trials": 5, "severities": "0.25,0.5,1.0", "fa_images": 10_000, "fa_streams": 5}
    if args.quick:
        defaults = {"trials": 2, "severities": "0.5,1.0", "fa_images": 2_000, "fa_streams": 2}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = configured(args)
    spec = SyntheticSpec(size=(args.size, args.size))
    severities = [float(s) for s in args.severities.split(",")]
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    started = time.perf_counter()
    recorder = Recorder(enabled=args.peers is not None)
    models: ImageModels = (
        StandInModels()
        if args.stand_in_models
        else ServedModels.from_baseline(intra_op_threads=args.threads, batch_size=args.batch_size)
    )
    fa = false_alarms(spec, config, args.fa_images, args.fa_streams, args.seed, recorder, models)
    results, prefix_alarms = detection(
        spec, config, shifts, severities, args.trials, args.warmup, args.horizon, args.seed, recorder, models
    )
    report: dict[str, Any] = {
        "bench": "drift",
        "models": {"stand_in": args.stand_in_models, "encoder": models.encoder_version,
                   "segmenter": models.model_version},
        "image_size": args.size,
        "reference_size": config.reference_size,
        "false_alarms": fa.events,
        "fa_images": fa.monitored_images,
        "false_alarms_per_10k": round(fa.per_10k, 3),
        "false_alarm_signals": dict(fa.signals),
        "prefix_false_alarms": prefix_alarms,
        "us_per_image": round(fa.us_per_image, 1),
        "shifts": [r.as_dict() for r in results],
        "horizon": args.horizon,
    }
    if args.peers:
        meta = {
            "reference_size": config.reference_size,
            "trials": args.trials,
            "fa_streams": args.fa_streams,
            "cases": [[r.shift, r.severity] for r in results],
        }
        report["peers"] = run_peers(args.peers, recorder, meta)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["summary"] = summarise(report)
    report["driftscope_leads"] = driftscope_leads(report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'shift':<13}{'severity':>9}{'detected':>10}{'median delay':>14}{'max delay':>11}  first signals")
    for row in report["shifts"]:
        median = "-" if row["median_delay"] is None else f"{row['median_delay']:.1f}"
        worst = "-" if row["max_delay"] is None else str(row["max_delay"])
        signals = ", ".join(f"{name} x{count}" for name, count in row["first_signals"].items())
        print(
            f"{row['shift']:<13}{row['severity']:>9.2f}{row['detection_rate']:>9.0%} {median:>14}{worst:>11}  {signals}"
        )
    print(
        f"false alarms: {fa.events} in {fa.monitored_images} in-distribution images "
        f"= {fa.per_10k:.2f} per 10,000 ({dict(fa.signals)}); {prefix_alarms} more in the detection prefixes"
    )
    print(f"monitor cost: {fa.us_per_image:.0f} us/image (both events, all signals); {report['seconds']} s total")
    if "peers" in report:
        print_peers(report)
    print(f"driftscope leads (goal rule): {report['driftscope_leads']}")
    return 0


def _methods(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    own = {"shifts": report["shifts"], "false_alarms_per_10k": report["false_alarms_per_10k"],
           "us_per_image": report["us_per_image"]}
    return {"driftscope": own, **report.get("peers", {}).get("methods", {})}


def summarise(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per method: mean detection rate, median of the per-case median delays, false alarms, cost."""
    out: dict[str, dict[str, float | None]] = {}
    for name, method in _methods(report).items():
        delays = [c["median_delay"] for c in method["shifts"] if c["median_delay"] is not None]
        out[name] = {
            "detection_rate": round(float(np.mean([c["detection_rate"] for c in method["shifts"]])), 3),
            "median_delay": float(np.median(delays)) if delays else None,
            "false_alarms_per_10k": method["false_alarms_per_10k"],
            "us_per_image": method["us_per_image"],
        }
    return out


def driftscope_leads(report: dict[str, Any]) -> bool | None:
    """The goal rule: against every peer with equal or fewer false alarms, no later on any case and
    earlier on average (a miss counts as the horizon). None when no peer ran, so nothing is claimed."""
    methods = _methods(report)
    own = methods.pop("driftscope")
    rivals = [m for m in methods.values() if m["false_alarms_per_10k"] <= own["false_alarms_per_10k"]]
    if not methods:
        return None
    if not rivals:
        return True

    def delay(case: dict[str, Any]) -> float:
        if case["median_delay"] is None or case["detection_rate"] < 1.0:
            return float(report["horizon"])
        return float(case["median_delay"])

    own_delays = [delay(c) for c in own["shifts"]]
    best = [min(delay(r["shifts"][i]) for r in rivals) for i in range(len(own_delays))]
    return all(o <= b for o, b in zip(own_delays, best, strict=True)) and float(np.mean(own_delays)) < float(
        np.mean(best)
    )


def run_peers(pythons: list[str], recorder: Recorder, meta: dict[str, Any]) -> dict[str, Any]:
    """Run ``bench/drift_peers/peers.py`` with each interpreter on the recorded streams; merge the reports.

    A library is reported as skipped only if no interpreter could import it.
    """
    merged: dict[str, Any] = {"methods": {}, "skipped": {}}
    loaded: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "streams.npz"
        recorder.save(data, meta)
        for python in pythons:
            done = subprocess.run([python, str(PEERS_SCRIPT), str(data)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"peer run with {python} failed ({done.returncode}):\n{done.stderr[-4000:]}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
            merged["methods"].update(report["methods"])
            merged["skipped"].update(report["skipped"])
            loaded.update(report["loaded"])
    merged["skipped"] = {lib: why for lib, why in merged["skipped"].items() if lib not in loaded}
    return merged


def print_peers(report: dict[str, Any]) -> None:
    """One row per shift and severity, one column per method: detection rate and median delay."""
    methods: dict[str, Any] = {"driftscope": {"shifts": report["shifts"]}, **report["peers"]["methods"]}
    print(f"\n{'shift':<13}{'sev':>5}" + "".join(f"{name:>26}" for name in methods))
    for i, row in enumerate(report["shifts"]):
        cells = []
        for method in methods.values():
            cell = method["shifts"][i]
            delay = "-" if cell["median_delay"] is None else f"{cell['median_delay']:.0f}"
            cells.append(f"{cell['detection_rate']:>4.0%} / {delay:>4}")
        print(f"{row['shift']:<13}{row['severity']:>5.2f}" + "".join(f"{c:>26}" for c in cells))
    fa_cells = [f"{report['false_alarms_per_10k']:.1f}"]
    fa_cells += [f"{m['false_alarms_per_10k']:.1f}" for m in report["peers"]["methods"].values()]
    print(f"{'FA per 10k':<18}" + "".join(f"{c:>26}" for c in fa_cells))
    us_cells = [f"{report['us_per_image']:.0f}"] + [
        f"{m['us_per_image']:.0f}" for m in report["peers"]["methods"].values()
    ]
    print(f"{'us per image':<18}" + "".join(f"{c:>26}" for c in us_cells))
    print("cells: detection rate / median delay (images); peers see the same images' raw signals")
    for name, why in report["peers"]["skipped"].items():
        print(f"skipped {name}: {why}")


if __name__ == "__main__":
    sys.exit(main())
