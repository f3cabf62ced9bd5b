"""Reading and writing images, masks and label images, with provenance sidecars.

The package is split by job; everything public is importable from here
(``from maskwork.core import io; io.read_image(...)``):

* :mod:`maskwork.core.io.reading` -- :func:`read_image`, :func:`read_images`,
  :class:`ImageReadError`, the pixel limit (:func:`max_pixels`,
  :func:`set_max_pixels`), and which library reads which format and why.
* :mod:`maskwork.core.io.writing` -- :func:`write_image`, :func:`write_mask`,
  :func:`write_labels`, :func:`write_labels_color`, :func:`write_cutout`,
  :func:`write_output` and :func:`output_suffix`; validated, atomic writes.
* :mod:`maskwork.core.io.sidecars` -- the JSON provenance sidecar
  (:func:`write_sidecar`, :func:`sidecar_path`, :func:`seed_summary`),
  :func:`write_json` and :func:`transform_json`.

Scaling deep images to 8 bits for display or export is not file I/O: it lives in
:mod:`maskwork.core.pixels`.
"""

from maskwork.core.io.reading import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_VARIABLE,
    READABLE_SUFFIXES,
    ImageReadError,
    max_pixels,
    read_image,
    read_images,
    set_max_pixels,
)
from maskwork.core.io.sidecars import (
    seed_summary,
    sidecar_path,
    transform_json,
    write_json,
    write_sidecar,
)
from maskwork.core.io.writing import (
    WRITABLE_SUFFIXES,
    output_suffix,
    write_cutout,
    write_image,
    write_labels,
    write_labels_color,
    write_mask,
    write_output,
    written_path,
)

__all__ = [
    "ImageReadError",
    "READABLE_SUFFIXES",
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_VARIABLE",
    "max_pixels",
    "set_max_pixels",
    "WRITABLE_SUFFIXES",
    "read_images",
    "read_image",
    "write_image",
    "write_mask",
    "write_labels",
    "write_labels_color",
    "write_cutout",
    "sidecar_path",
    "write_sidecar",
    "write_json",
    "output_suffix",
    "transform_json",
    "write_output",
    "written_path",
    "seed_summary",
]
