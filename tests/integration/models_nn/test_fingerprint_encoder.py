"""The shipped fingerprint encoder places held-out images next to the dataset they come from."""

from __future__ import annotations

import numpy as np

from models.data.dsb import dsb_tiles
from models.data.synthetic import SyntheticSpec, generate_batch
from models.fingerprint import fingerprints_by_group, nearest_datasets
from models.registry import ARTIFACTS_DIR
from models.runners import EncoderRunner


def test_held_out_images_are_nearest_to_their_own_dataset() -> None:
    encoder = EncoderRunner(ARTIFACTS_DIR / "encoder.onnx", intra_op_threads=1)
    spec = SyntheticSpec(size=(128, 128))
    synthetic_ref, _ = generate_batch(spec, 16, seed=11)
    dsb_ref = [image for image, _ in dsb_tiles(128, "train")]
    ref_latents = np.concatenate([encoder.encode(list(synthetic_ref))[0], encoder.encode(dsb_ref)[0]])
    prints = fingerprints_by_group(ref_latents, ["synthetic"] * 16 + ["dsb"] * len(dsb_ref))

    synthetic_new, _ = generate_batch(spec, 8, seed=12)
    synthetic_latents, _ = encoder.encode(list(synthetic_new))
    dsb_latents, _ = encoder.encode([image for image, _ in dsb_tiles(128, "test")])

    assert nearest_datasets(synthetic_latents, prints)[0].key == "synthetic"
    assert nearest_datasets(dsb_latents, prints)[0].key == "dsb"
    # No image may dominate a mean-latent fingerprint: latent norms stay within one order of magnitude.
    norms = np.linalg.norm(np.concatenate([ref_latents, synthetic_latents, dsb_latents]), axis=1)
    assert norms.max() < 10 * np.median(norms)
