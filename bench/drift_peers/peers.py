"""Peer drift detectors on the streams ``bench/drift.py`` recorded; runs in the peer venv.

Reads the ``.npz`` that ``bench/drift.py --peers PYTHON`` writes (raw per-image signal values and
encoder latents of every stream) and prints one JSON line: per method, false alarms per 10,000
in-distribution images, microseconds per image, and per shift case the detection rate and median
delay. It imports numpy and the peer libraries only (never driftscope), so each library can pin what
it needs. A method whose library is missing is listed under ``skipped``.

Every method sees the first ``reference_size`` images of a stream as its reference, then one image
at a time. The per-signal methods standardise each signal by the reference median and MAD (the usual
robust z-score) and watch every signal with a two-sided detector (a one-sided one, like Frouros'
CUSUM and Page-Hinkley, runs twice: on z and on -z); an alarm on any signal is an alarm for the
image (Frouros' ADWIN accepts only non-negative values and watches |z|). After an alarm the
detector that fired is replaced by a fresh one. Library defaults are used throughout: they are what
a user of the library starts from.

    /tmp/drift-peers/bin/python bench/drift_peers/peers.py streams.npz
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

_MAD_TO_SD = 1.4826


class Method(Protocol):
    """A drift detector fed one image at a time after a fit on the reference images."""

    def fit(self, values: np.ndarray, latents: np.ndarray) -> None: ...

    def update(self, values: np.ndarray, latent: np.ndarray) -> bool: ...


class PerSignal:
    """Univariate detectors per signal on robust z-scores; ``make`` builds one, ``update`` feeds it."""

    def __init__(
        self,
        make: Callable[[], Any],
        update: Callable[[Any, float], bool],
        two_sided: bool = True,
        absolute: bool = False,
    ) -> None:
        self.make = make
        self.step = update
        self.signs = (1.0,) if two_sided or absolute else (1.0, -1.0)
        self.absolute = absolute
        self.detectors: list[Any] = []
        self.centre = np.zeros(0)
        self.scale = np.ones(0)

    def fit(self, values: np.ndarray, latents: np.ndarray) -> None:
        self.centre = np.nanmedian(values, axis=0)
        mad = _MAD_TO_SD * np.nanmedian(np.abs(values - self.centre), axis=0)
        self.scale = np.where(mad > 0, mad, 1e-3)
        self.detectors = [self.make() for _ in range(values.shape[1] * len(self.signs))]

    def update(self, values: np.ndarray, latent: np.ndarray) -> bool:
        fired = False
        for column, value in enumerate(values):
            if np.isnan(value):
                continue
            z = float((value - self.centre[column]) / self.scale[column])
            if self.absolute:
                z = abs(z)
            for side, sign in enumerate(self.signs):
                slot = column * len(self.signs) + side
                if self.step(self.detectors[slot], sign * z):
                    self.detectors[slot] = self.make()
                    fired = True
        return fired


def river_methods() -> dict[str, Method]:
    from river import drift

    def feed(detector: Any, z: float) -> bool:
        detector.update(z)
        return bool(detector.drift_detected)

    return {
        "river-adwin": PerSignal(drift.ADWIN, feed),
        "river-page-hinkley": PerSignal(drift.PageHinkley, feed),
    }


def frouros_methods() -> dict[str, Method]:
    from frouros.detectors.concept_drift import (
        ADWIN,
        CUSUM,
        ADWINConfig,
        CUSUMConfig,
        PageHinkley,
        PageHinkleyConfig,
    )

    def feed(detector: Any, z: float) -> bool:
        detector.update(value=z)
        return bool(detector.drift)

    return {
        "frouros-cusum": PerSignal(lambda: CUSUM(config=CUSUMConfig()), feed, two_sided=False),
        "frouros-page-hinkley": PerSignal(lambda: PageHinkley(config=PageHinkleyConfig()), feed, two_sided=False),
        # Frouros' ADWIN takes non-negative values (error rates): it watches |z|.
        "frouros-adwin": PerSignal(lambda: ADWIN(config=ADWINConfig()), feed, absolute=True),
    }


class AlibiCVMOnline:
    """Alibi Detect's online Cramér-von Mises detector on all signals at once.

    Its thresholds are configured by simulation at every fit, and an expected run time of ``ert``
    needs more than ``ert`` x (number of windows) x ~10 bootstrap samples: ERT 10,000 would need
    ~120,000 samples per reference (minutes each), so the run uses ERT 1,000 and one window.
    """

    def __init__(self, ert: int = 1_000, window_sizes: tuple[int, ...] = (20,), bootstraps: int = 15_000) -> None:
        self.ert = ert
        self.window_sizes = list(window_sizes)
        self.bootstraps = bootstraps
        self.detector: Any = None
        self.fill = np.zeros(0)

    def fit(self, values: np.ndarray, latents: np.ndarray) -> None:
        from alibi_detect.cd import CVMDriftOnline

        self.fill = np.nanmedian(values, axis=0)
        reference = np.where(np.isnan(values), self.fill, values)
        self.detector = CVMDriftOnline(
            reference, ert=self.ert, window_sizes=self.window_sizes, n_bootstraps=self.bootstraps, verbose=False
        )

    def update(self, values: np.ndarray, latent: np.ndarray) -> bool:
        row = np.where(np.isnan(values), self.fill, values)
        fired = bool(self.detector.predict(row)["data"]["is_drift"])
        if fired:
            self.detector.reset_state()
        return fired


def alibi_methods() -> dict[str, Method]:
    import alibi_detect  # noqa: F401  (fail here, not at fit, when the library is missing)

    return {"alibi-cvm-online": AlibiCVMOnline()}


LIBRARIES: dict[str, Callable[[], dict[str, Method]]] = {
    "river": river_methods,
    "frouros": frouros_methods,
    "alibi-detect": alibi_methods,
}


def evaluate(method: Method, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    reference = int(meta["reference_size"])
    alarms = images = 0
    seconds = 0.0
    for stream in range(int(meta["fa_streams"])):
        values, latents = arrays[f"fa/{stream}/values"], arrays[f"fa/{stream}/latent"]
        method.fit(values[:reference], latents[:reference])
        start = time.thread_time()
        alarms += sum(method.update(v, lat) for v, lat in zip(values[reference:], latents[reference:], strict=True))
        seconds += time.thread_time() - start
        images += len(values) - reference
    delays: dict[tuple[str, float], list[int | None]] = {(s, float(v)): [] for s, v in meta["cases"]}
    prefix_alarms = 0
    for trial in range(int(meta["trials"])):
        values, latents = arrays[f"det/{trial}/prefix/values"], arrays[f"det/{trial}/prefix/latent"]
        method.fit(values[:reference], latents[:reference])
        prefix_alarms += sum(
            method.update(v, lat) for v, lat in zip(values[reference:], latents[reference:], strict=True)
        )
        for shift, severity in delays:
            warmed = copy.deepcopy(method)
            shifted = arrays[f"det/{trial}/{shift}/{severity}/values"]
            shifted_latents = arrays[f"det/{trial}/{shift}/{severity}/latent"]
            delay = next(
                (
                    i + 1
                    for i, (v, lat) in enumerate(zip(shifted, shifted_latents, strict=True))
                    if warmed.update(v, lat)
                ),
                None,
            )
            delays[(shift, severity)].append(delay)
    return {
        "false_alarms_per_10k": 10_000.0 * alarms / images if images else 0.0,
        "prefix_false_alarms": prefix_alarms,
        "us_per_image": 1e6 * seconds / images if images else 0.0,
        "shifts": [
            {
                "shift": shift,
                "severity": severity,
                "detection_rate": sum(d is not None for d in found) / len(found),
                "median_delay": statistics.median([d for d in found if d is not None])
                if any(d is not None for d in found)
                else None,
            }
            for (shift, severity), found in delays.items()
        ],
    }


def main(path: str) -> int:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {name: data[name] for name in data.files if name != "meta"}
    methods: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for library, load in LIBRARIES.items():
        try:
            available = load()
        except ImportError as exc:
            skipped[library] = str(exc)
            continue
        for name, method in available.items():
            try:
                methods[name] = evaluate(method, arrays, meta)
            except (ValueError, RuntimeError, MemoryError) as exc:  # one peer failing must not sink the others
                skipped[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"methods": methods, "skipped": skipped}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
