"""The pretrained models maskwork knows how to download, and where each file's hashes came from.

Each entry names one file at its publisher's address and the hashes the file must match,
each written ``"<algorithm>:<hex>"``: ``sha256``, ``md5`` or ``gitsha1`` (the Git blob id of
a file committed to the publisher's repository, i.e. SHA-1 of ``b"blob <size>\\0"`` plus
the content, which pins the bytes of that commit). All of an entry's hashes are checked,
in one pass over the file. ``hash_source`` cites where each came from. An entry without
hashes (a site's own model, see below) is trusted on its first download and pinned to
that download's SHA-256 from then on.

A site can add its own models, or point a name at a mirror, with a JSON file named by
``MASKWORK_MODELS_CATALOGUE``: a list of objects with the fields of :class:`ModelEntry`.
An entry there replaces the built-in entry of the same name. The tests use it to serve
small generated files from a server on the loopback address.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

#: Environment variable naming a JSON file of extra (or replacing) catalogue entries.
EXTRA_CATALOGUE_VARIABLE = "MASKWORK_MODELS_CATALOGUE"


class ModelNotInstalled(LookupError):
    """A model name that is not downloaded, or neither a catalogue name nor an existing file."""


class UnknownModel(ModelNotInstalled):
    """A name that is not in the catalogue (the message lists the known names)."""


#: The hash algorithms an entry may name, and the length of each one's digest in hex digits.
HASH_HEX_DIGITS = {"sha256": 64, "md5": 32, "gitsha1": 40}


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model file.

    Attributes
    ----------
    name : str
        What operators and ``maskwork models`` call it (``sam_vit_b``).
    task : str
        What it does, in words a person reads in the Models dialog.
    architecture : str
        The network family the loader builds (``sam``, ``sam2``, ``efficient_sam``,
        ``lama``).
    file_name : str
        The publisher's file name, kept in the cache under that name.
    size_bytes : int or None
        The file's exact size when known (shown before downloading, and the progress total
        when the server does not send one).
    licence : str
        SPDX identifier of the weights' licence.
    url : str
        The publisher's download address.
    hashes : tuple of str
        ``"<algorithm>:<hex>"`` values the file must all match; empty when none is known.
    hash_source : str
        Where each hash was found, or why there is none.
    """

    name: str
    task: str
    architecture: str
    file_name: str
    size_bytes: int | None
    licence: str
    url: str
    hashes: tuple[str, ...]
    hash_source: str

    def __post_init__(self) -> None:
        # JSON gives a list (or, written by hand, one string); a tuple keeps the entry immutable.
        # (Lower case: tools such as PowerShell's Get-FileHash print upper-case hex.)
        hashes = tuple(str(value).strip().lower() for value in ((self.hashes,) if isinstance(self.hashes, str)
                                                                 else self.hashes))
        object.__setattr__(self, "hashes", hashes)
        # Checked here, when the catalogue is read: a typo found only after the whole
        # download cost the download, and every retry another.
        for value in hashes:
            algorithm, _, digest = value.partition(":")
            digits = HASH_HEX_DIGITS.get(algorithm)
            if digits is None or len(digest) != digits or not all(c in "0123456789abcdef" for c in digest):
                raise ValueError(f"{self.name}: the hash {value!r} is not ALGORITHM:HEX with ALGORITHM one of "
                                 f"{', '.join(HASH_HEX_DIGITS)} and HEX its digest ({digits or 'its'} hex digits)")


_SAM_SOURCE = (
    "facebookresearch/segment-anything README 'Model Checkpoints' gives the URL but no checksum; MD5 from "
    "Sanster/IOPaint iopaint/plugins/interactive_seg.py (its first 6 digits are the suffix of Meta's file "
    "name); SHA-256 as recorded by independent projects that pin this file"
)
_SAM2_SOURCE = (
    "facebookresearch/sam2 README and checkpoints/download_ckpts.sh give the URL but no checksum; MD5 from "
    "Sanster/IOPaint iopaint/plugins/interactive_seg.py (SEGMENT_ANYTHING_MODELS, commit 61a759fb); size as "
    "recorded by independent projects"
)

BUILT_IN = (
    ModelEntry(
        name="sam_vit_b",
        task="Segment Anything: object from box or clicks (ViT-B, fastest of the three)",
        architecture="sam",
        file_name="sam_vit_b_01ec64.pth",
        size_bytes=375_042_383,
        licence="Apache-2.0",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        hashes=(
            "md5:01ec64d29a2fca3f0661936605ae66f8",
            "sha256:ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        ),
        hash_source=_SAM_SOURCE,
    ),
    ModelEntry(
        name="sam_vit_l",
        task="Segment Anything: object from box or clicks (ViT-L)",
        architecture="sam",
        file_name="sam_vit_l_0b3195.pth",
        size_bytes=1_249_524_607,
        licence="Apache-2.0",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        hashes=(
            "md5:0b3195507c641ddb6910d2bb5adee89c",
            "sha256:3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        hash_source=_SAM_SOURCE,
    ),
    ModelEntry(
        name="sam_vit_h",
        task="Segment Anything: object from box or clicks (ViT-H, most accurate)",
        architecture="sam",
        file_name="sam_vit_h_4b8939.pth",
        size_bytes=2_564_550_879,
        licence="Apache-2.0",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        hashes=(
            "md5:4b8939a88964f0f4ff5f5b2642c598a6",
            "sha256:a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        ),
        hash_source=_SAM_SOURCE,
    ),
    ModelEntry(
        name="efficient_sam_vitt",
        task="EfficientSAM ViT-Ti: Segment Anything at interactive speed on a CPU (TorchScript)",
        architecture="efficient_sam",
        file_name="efficient_sam_vitt_torchscript.pt",
        size_bytes=None,
        licence="Apache-2.0",
        url="https://github.com/yformer/EfficientSAM/raw/d525f622e6f640acf5a0fc37c7ca1f243da5bde0/"
        "torchscripted_model/efficient_sam_vitt_torchscript.pt",
        hashes=("gitsha1:dcd5b5e659129371dffad8c5e4f7215c2b72b0cc",),
        hash_source=(
            "Git blob id of torchscripted_model/efficient_sam_vitt_torchscript.pt in yformer/EfficientSAM "
            "at commit d525f622 (file last changed in 3477a435, 2023-12-16); the URL is pinned to that commit. "
            "Size not found in any source reachable here; the server's Content-Length gives it during download"
        ),
    ),
    ModelEntry(
        name="sam2.1_hiera_tiny",
        task="SAM 2.1 Hiera-T: object from box, clicks or a previous mask (smallest)",
        architecture="sam2",
        file_name="sam2.1_hiera_tiny.pt",
        size_bytes=156_008_466,
        licence="Apache-2.0",
        url="https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt",
        hashes=("md5:6aa6761c9da74fbaa74b4c790a0a2007",),
        hash_source=_SAM2_SOURCE,
    ),
    ModelEntry(
        name="sam2.1_hiera_base_plus",
        task="SAM 2.1 Hiera-B+: object from box, clicks or a previous mask (more accurate)",
        architecture="sam2",
        file_name="sam2.1_hiera_base_plus.pt",
        size_bytes=323_606_802,
        licence="Apache-2.0",
        url="https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt",
        hashes=("md5:ec7bd7d23d280d5e3cfa45984c02eda5",),
        hash_source=_SAM2_SOURCE,
    ),
    ModelEntry(
        name="big_lama",
        task="LaMa (big-lama): fills a masked hole with plausible texture (TorchScript)",
        architecture="lama",
        file_name="big-lama.pt",
        size_bytes=205_669_692,
        licence="Apache-2.0",
        url="https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
        hashes=(
            "md5:e3aa4aaa15225a33ec84f9f4bc47e500",
            "sha256:344c77bbcb158f17dd143070d1e789f38a66c04202311ae3a258ef66667a9ea9",
        ),
        hash_source=(
            "MD5: LAMA_MODEL_MD5 in Sanster/IOPaint (lama-cleaner) iopaint/model/lama.py (commit 61a759fb), whose "
            "author publishes this TorchScript export of advimman/lama's big-lama at that URL; SHA-256 and size "
            "as recorded by independent projects that pin this file"
        ),
    ),
)


def _extra_entries() -> list[ModelEntry]:
    """Entries of the JSON file named by ``MASKWORK_MODELS_CATALOGUE`` (none when unset)."""
    chosen = os.environ.get(EXTRA_CATALOGUE_VARIABLE, "").strip()
    if not chosen:
        return []
    try:
        records = json.loads(Path(chosen).expanduser().read_text(encoding="utf-8"))
        names = {field.name for field in fields(ModelEntry)}
        return [ModelEntry(**{key: record[key] for key in names}) for record in records]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{EXTRA_CATALOGUE_VARIABLE}={chosen}: not a list of model entries ({error})") from error


def catalogue() -> tuple[ModelEntry, ...]:
    """Every known model: the built-in ones, with those of ``MASKWORK_MODELS_CATALOGUE`` replacing or added."""
    extra = _extra_entries()
    replaced = {entry.name for entry in extra}
    return tuple(entry for entry in BUILT_IN if entry.name not in replaced) + tuple(extra)


def model_entry(name: str) -> ModelEntry:
    """The catalogue entry called ``name``; :class:`UnknownModel` naming the known ones otherwise."""
    entries = catalogue()
    for entry in entries:
        if entry.name == name:
            return entry
    raise UnknownModel(f"no model {name!r} in the catalogue; known models: {', '.join(e.name for e in entries)}")


def human_bytes(count: int | None) -> str:
    """``375.0 MB`` (decimal units, as download sizes are quoted); ``unknown`` when unknown."""
    if count is None:
        return "unknown"
    for unit in ("B", "kB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.2f} GB"
