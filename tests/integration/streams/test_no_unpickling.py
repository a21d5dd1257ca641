"""Nothing received from a topic is ever unpickled: not in the source, and not when an attacker tries.

Two halves. The source audit parses every module of the product and fails on any call that can
run a pickle (``pickle``/``dill``/``joblib``/``marshal``/``shelve`` loads, ``torch.load`` without
``weights_only=True``, ``np.load`` without ``allow_pickle=False``, ``yaml.load``, ``eval``/``exec``).
The attack feeds the real fingerprint and segment steps pickles whose unpickling would create a
file — as the message, inside a frame, and behind a claim check with a valid sha256 — and checks each
is dead-lettered with a reason while the file never appears.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
from pathlib import Path

import numpy as np
import zstandard

from schemas.blobstore import BlobStore
from schemas.codec import _PREFIX, decode, encode
from schemas.events import DeadLetter, ImageEvent
from streams.fingerprint import Fingerprinter
from streams.segment import Segmenter
from tests.e2e.harness import image_events
from tests.integration.streams.conftest import record
from tests.integration.streams.test_image_steps import steps  # noqa: F401  (the real ONNX steps)

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("schemas", "producers", "streams", "models", "consumers", "driftscope")

# module -> functions of it that deserialise arbitrary objects
_UNPICKLERS = {
    "pickle": {"load", "loads", "Unpickler"},
    "_pickle": {"load", "loads", "Unpickler"},
    "dill": {"load", "loads"},
    "cloudpickle": {"load", "loads"},
    "joblib": {"load"},
    "marshal": {"load", "loads"},
    "shelve": {"open"},
    "yaml": {"load", "unsafe_load", "full_load"},
    "pandas": {"read_pickle"},
}


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _unsafe_calls(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}  # local name -> module, for `import pickle as p` and `from pickle import loads`
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.relative_to(root)}:{node.lineno}"
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
            found.append(f"{where} {func.id}()")
            continue
        if isinstance(func, ast.Name) and func.id in imported:
            module, name = imported[func.id]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module, name = aliases.get(func.value.id, func.value.id), func.attr
        else:
            continue
        module = module.split(".")[0]
        if name in _UNPICKLERS.get(module, set()):
            if module == "yaml" and name == "load" and "SafeLoader" in ast.unparse(node):
                continue
            found.append(f"{where} {module}.{name}")
        elif module == "torch" and name == "load" and not _is_const(_keyword(node, "weights_only"), True):
            found.append(f"{where} torch.load without weights_only=True")
        elif module in ("np", "numpy") and name == "load" and not _is_const(_keyword(node, "allow_pickle"), False):
            found.append(f"{where} np.load without allow_pickle=False")
    return found


def test_no_module_can_unpickle() -> None:
    modules = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    assert len(modules) > 50  # the audit really read the product
    assert [call for path in modules for call in _unsafe_calls(path)] == []


def test_the_audit_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    source = ("import pickle as p\nfrom numpy import load\nimport torch\nimport yaml\n"
              "p.loads(b'')\nload('x.npy')\ntorch.load('m.pt')\ntorch.load('m.pt', weights_only=True)\n"
              "yaml.load('a')\neval('1')\n")  # fmt: skip
    sample.write_text(source)
    found = _unsafe_calls(sample, tmp_path)
    assert [f.split(" ", 1)[1] for f in found] == [
        "pickle.loads", "np.load without allow_pickle=False", "torch.load without weights_only=True",
        "yaml.load", "eval()",
    ]


class _Trap:
    """Unpickling this creates ``marker``: proof that someone unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _hostile_messages(template: ImageEvent, blobs: BlobStore, marker: Path) -> dict[str, bytes]:
    trap = pickle.dumps(_Trap(marker))
    frame = encode(template)
    _, length = _PREFIX.unpack_from(frame)
    meta = json.loads(frame[_PREFIX.size : _PREFIX.size + length])
    # A frame whose pixels claim to be an object array, the payload a pickle.
    as_objects = {**meta, "_binary": {"pixels": {**meta["_binary"]["pixels"], "dtype": "object", "codec": "raw",
                                                 "offset": 0, "length": len(trap)}}}  # fmt: skip
    header = json.dumps(as_objects).encode()
    # A claim check with a correct sha256 whose blob is an .npy of pickled objects.
    npy = io.BytesIO()
    np.save(npy, np.array([_Trap(marker)], dtype=object), allow_pickle=True)
    ref = blobs.put_bytes(zstandard.ZstdCompressor().compress(npy.getvalue()), prefix="images")
    claimed = template.model_copy(update={"pixels": None, "blob": ref})
    return {
        "raw-pickle": trap,
        "object-dtype-frame": _PREFIX.pack(b"DSF1", len(header)) + header + trap,
        "pickled-claim-check": encode(claimed),
    }


def test_pickles_on_a_topic_are_dead_lettered_never_run(
    steps: tuple[Fingerprinter, Segmenter],  # noqa: F811
    tmp_path: Path,
) -> None:
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_Trap(marker)))  # the trap works: unpickling does create the file
    assert marker.exists()
    marker.unlink()

    [template] = image_events(1, size=64, seed=11)
    fingerprinter, segmenter = steps
    assert fingerprinter.blobs is not None
    hostile = _hostile_messages(template, fingerprinter.blobs, marker)
    messages = [record("images.raw", value, key=name.encode()) for name, value in hostile.items()]
    for step in (fingerprinter, segmenter):
        outcome = step.process(messages)
        assert (outcome.processed, outcome.dead_lettered) == (0, len(hostile))
        letters = [decode(o.value, expected=DeadLetter) for o in outcome.outputs if o.topic == "images.raw.dlq"]
        assert all(isinstance(letter, DeadLetter) and letter.error for letter in letters)
    assert not marker.exists()
