"""The image contract's limits: what an image may be, and that a hostile header costs nothing."""

from __future__ import annotations

import tracemalloc

import pytest

from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.events import MAX_PIXELS, MAX_SIDE, MIN_SIDE, check_image_shape, check_mask_shape
from tests.fault.inputs import hostile_images


@pytest.mark.parametrize("shape", [(MIN_SIDE, MIN_SIDE), (MIN_SIDE, MAX_SIDE), (8192, 8192), (512, 512, 16),
                                   (64, 64, 1)], ids=str)
def test_shapes_inside_the_limits_are_images(shape: tuple[int, ...]) -> None:
    check_image_shape(shape)


@pytest.mark.parametrize(("shape", "reason"), [
    ((0, 32), "empty dimension"),
    ((MIN_SIDE - 1, 64), "outside"),
    ((100_000, 1), "outside"),
    ((MAX_SIDE + 1, 64), "outside"),
    ((MAX_SIDE, MAX_SIDE), f"exceeds {MAX_PIXELS} pixels"),
    ((32, 32, 17), "channels exceed"),
    ((32,), "(H, W) or (H, W, C)"),
    ((32, 32, 3, 2), "(H, W) or (H, W, C)"),
], ids=str)
def test_shapes_outside_the_limits_are_refused_with_the_limit(shape: tuple[int, ...], reason: str) -> None:
    with pytest.raises(ValueError) as info:
        check_image_shape(shape)
    assert reason in str(info.value)


def test_masks_are_two_dimensional_and_no_larger_than_an_image() -> None:
    check_mask_shape((4, 4))
    for shape in [(4, 4, 1), (0, 4), (MAX_SIDE + 1, 1)]:
        with pytest.raises(ValueError, match="mask"):
            check_mask_shape(shape)


def test_a_huge_claim_is_refused_before_anything_is_decompressed() -> None:
    """The 16k x 16k frame really inflates to 512 MiB; decoding it must not allocate even 1% of that."""
    (claim,) = [h for h in hostile_images() if h.name == "16kx16k-claim"]
    tracemalloc.start()
    try:
        with pytest.raises(SchemaError, match=f"exceeds {MAX_PIXELS} pixels"):
            decode(claim.value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"decoding the refused frame allocated {peak} bytes"
