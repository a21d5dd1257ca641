"""``driftscope segment`` and ``driftscope models``: run the serving segmenter on files; inspect the registry.

Examples::

    driftscope segment plate1/*.tif --out masks/     # writes masks/<name>_mask.tif, prints object counts
    driftscope models list --json                    # versions, kinds, sha256, metrics, serving flag
    driftscope models rollback segmenter             # serve the previous segmenter again

Both read the registry on the configured blob store (``DRIFTSCOPE_BLOB_URL`` or ``<home>/blobs``, or
the store of the stack running in that home). An empty registry is seeded from the shipped
baseline models first, so a new user can segment right away. Serving needs no torch.

Exit codes: 0 done; 1 some images could not be read or segmented (the others are written);
2 bad usage (unknown version or kind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tifffile
import typer

from driftscope.commands.clients import ExitCode, resolve_settings
from models.data.dataset import DatasetError, read_image
from models.registry import ModelKind, Registry, RegistryError
from models.runners import SegmenterRunner, instances_from_probability
from schemas.blobstore import BlobStore

__all__ = ["app", "list_models", "segment"]

app = typer.Typer(help="The model registry: list versions, promote, roll back.\n\nExample: driftscope models list",
                  no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)")]


def _registry(home: Path | None) -> Registry:
    registry = Registry(BlobStore(resolve_settings(home).resolved_blob_url))
    if not {"segmenter", "encoder"} <= set(registry.serving_versions()):
        registry.bootstrap_from_baseline()
    return registry


def segment(
    images: Annotated[list[Path], typer.Argument(help="TIFF, OME-TIFF or PNG files", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="folder for the <name>_mask.tif label images")],
    version: Annotated[str | None, typer.Option(help="segmenter version (default: the serving one)")] = None,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per image")] = False,
    home: HomeOption = None,
) -> None:
    """Segment images with the serving model: write label images, print object counts per image.

    Example: driftscope segment plate3/*.tif --out masks/

    RGB(A) files given to a one-channel model are segmented on the mean of their colour channels.
    """
    registry = _registry(home)
    try:
        record = registry.serving("segmenter") if version is None else registry.get(version)
        runner = SegmenterRunner(registry.load_verified("segmenter", record.version), intra_op_threads=threads)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in images:
        try:
            image, _ = read_image(path)
            (probability,) = runner.predict([_to_model_channels(image, runner.in_channels)])
        except (DatasetError, ValueError) as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            failed += 1
            continue
        labels = instances_from_probability(probability)
        target = out / f"{_stem(path)}_mask.tif"
        tifffile.imwrite(target, labels.astype(np.int32), compression="zlib")
        count = int(labels.max())
        if as_json:
            typer.echo(json.dumps({"image": str(path), "mask": str(target), "objects": count,
                                   "model_version": record.version}))
        else:
            typer.echo(f"{path.name}\t{count} objects\t{target}")
    if failed:
        raise typer.Exit(ExitCode.FAILED)


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document: a list of versions")] = False,
    home: HomeOption = None,
) -> None:
    """List model versions with kind, sha256, metrics, lineage and whether each is serving.

    Example: driftscope models list --json
    """
    registry = _registry(home)
    serving = set(registry.serving_versions().values())
    rows = [_row(v.model_dump(mode="json"), v.version in serving) for v in registry.versions()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(row["metrics"].items()) if not k.startswith("epochs"))
        flag = "*" if row["serving"] else " "
        typer.echo(f"{flag} {row['kind']:9s} {row['version']:22s} {row['precision']:4s} "
                   f"parent={row['parent'] or '-'} {metrics}")


@app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="a version from `driftscope models list`")],
    home: HomeOption = None,
) -> None:
    """Print everything the registry knows of one version as JSON: artifact, lineage, metrics, data selection.

    Example: driftscope models show segmenter-daaa7cb02d39
    """
    registry = _registry(home)
    try:
        record = registry.get(version)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    serving = version in registry.serving_versions().values()
    typer.echo(json.dumps({**record.model_dump(mode="json"), "serving": serving}, indent=2))


@app.command("promote")
def promote(
    kind: Annotated[str, typer.Argument(help="segmenter or encoder")],
    version: Annotated[str, typer.Argument(help="a version from `driftscope models list`")],
    home: HomeOption = None,
) -> None:
    """Serve ``version`` for ``kind`` (workers pick it up and verify its sha256 before swapping).

    Example: driftscope models promote segmenter segmenter-daaa7cb02d39
    """
    _change(lambda registry: registry.promote(_kind(kind), version), home)


@app.command("rollback")
def rollback(
    kind: Annotated[str, typer.Argument(help="segmenter or encoder")],
    home: HomeOption = None,
) -> None:
    """Serve the previously serving version of ``kind`` again.

    Example: driftscope models rollback segmenter
    """
    _change(lambda registry: registry.rollback(_kind(kind)), home)


def _change(action: Any, home: Path | None) -> None:
    try:
        record = action(_registry(home))
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    typer.echo(f"{record.kind} now serving {record.version}")


def _kind(kind: str) -> ModelKind:
    if kind == "segmenter":
        return "segmenter"
    if kind == "encoder":
        return "encoder"
    raise RegistryError(f"kind must be segmenter or encoder, got {kind!r}")


def _row(record: dict[str, Any], serving: bool) -> dict[str, Any]:
    return {
        "kind": record["kind"],
        "version": record["version"],
        "sha256": record["artifact"]["sha256"],
        "size": record["artifact"]["size"],
        "precision": record["precision"],
        "parent": record["parent"],
        "run_id": record["run_id"],
        "metrics": record["metrics"],
        "created_at": record["created_at"],
        "serving": serving,
    }


def _to_model_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Nuclei saved as colour PNGs (as in the DSB stage-1 data) feed a one-channel model as their gray mean."""
    if channels == 1 and image.ndim == 3 and image.shape[2] in (3, 4):
        return np.asarray(image[..., :3].astype(np.float32).mean(axis=2))
    return image


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
