"""What a fetched attachment must be before it enters the documentation (I.6, I.10).

Its size under ``[records] max_attachment_bytes``; its type found from its content
(Pillow for images, the ``%PDF-`` signature for PDF), never from what the sender or the
server claims, and listed in ``[records] attachment_types``. Images are decoded and
encoded again from their pixels alone, so EXIF (GPS position, device, time), XMP, IPTC,
comments and embedded thumbnails are gone (I.10); the EXIF orientation is applied first
so the picture still stands upright. Of an animated image the first frame is kept.
Pure and CPU-bound: the fetcher runs it in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from xmpp_clinic.records.aesgcm import AttachmentRefused

MAX_PIXELS = 100_000_000  # larger is refused before decoding (decompression bombs)
PDF = "application/pdf"
# What Pillow opens and writes back, by the format it recognised.
_IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95},
    "PNG": {"optimize": False},
    "GIF": {},
    "WEBP": {"quality": 95},
}


@dataclass(frozen=True)
class VettedFile:
    """An attachment fit for the documentation: its content and its sniffed type."""

    content: bytes
    media_type: str
    stripped: bool  # True: an image encoded again without metadata


def sniff(data: bytes) -> str:
    """The media type of ``data`` by its content; "" when it is none we recognise."""
    if data.startswith(b"%PDF-"):
        return PDF
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _IMAGE_TYPES.get(image.format or "", "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return ""


def strip_metadata(data: bytes) -> bytes:
    """The image in ``data`` encoded again from its pixels only (I.10)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            if fmt not in _IMAGE_TYPES:
                raise AttachmentRefused("type-not-allowed", "not an image we can clean")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise AttachmentRefused("too-large", "image dimensions")
            upright = ImageOps.exif_transpose(image) or image
            if upright.mode == "P":
                upright = upright.convert("RGBA")
            if fmt == "JPEG" and upright.mode not in ("L", "RGB", "CMYK"):
                upright = upright.convert("RGB")
            # A new image from the pixels alone: no info, no EXIF, no ICC, no thumbnail.
            clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
            out = io.BytesIO()
            clean.save(out, fmt, **_SAVE_OPTIONS[fmt])
            return out.getvalue()
    except AttachmentRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise AttachmentRefused("unreadable-image") from None


def vet(data: bytes, allowed_types: Collection[str], max_bytes: int) -> VettedFile:
    """``data`` checked and cleaned; AttachmentRefused with the reason otherwise."""
    if len(data) > max_bytes:
        raise AttachmentRefused("too-large", f"over {max_bytes} bytes")
    media_type = sniff(data)
    if not media_type or media_type not in allowed_types:
        raise AttachmentRefused("type-not-allowed", media_type or "unrecognised content")
    if media_type == PDF:
        return VettedFile(data, media_type, stripped=False)
    return VettedFile(strip_metadata(data), media_type, stripped=True)
