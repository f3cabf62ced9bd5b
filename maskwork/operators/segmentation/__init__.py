"""Segmentation operators; importing this package registers them."""

from maskwork.operators.segmentation import grabcut  # noqa: F401
