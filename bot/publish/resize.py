"""Make an image fit a platform's byte limit (Bluesky's blobs: 976,560 bytes), rather than
refuse the post: recompress it, smaller and smaller, until it fits.

Pillow is imported when an image has to be changed, not when this module is: loading and
planning never need it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import PublishRejected

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

QUALITIES = (90, 85, 80, 70, 60, 50)
"""JPEG qualities tried at each size, best first."""
SCALE_STEP = 0.8
"""Each round shrinks the longest side by this factor once no quality fits."""
MIN_SIDE = 64
"""Below this, an image is no use any more: give up."""
MAX_PIXELS = 80_000_000
"""An image claiming more pixels is refused unread (a decompression bomb)."""


_ORIENTATION = 0x0112  # the EXIF tag
_QUARTER_TURNS = frozenset({5, 6, 7, 8})  # orientations that show the image turned by 90°


@dataclass(frozen=True, slots=True)
class Picture:
    """What a platform needs to know of an image besides its bytes."""

    mime: str  # image/jpeg, image/png, image/webp, image/gif
    width: int  # as shown: a photo whose EXIF orientation turns it has its sides swapped
    height: int


def describe(data: bytes) -> Picture:
    """The type and size of the image in ``data``.

    Raises:
        PublishRejected: ``data`` is not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "application/octet-stream")
            width, height = image.width, image.height
            if image.getexif().get(_ORIENTATION) in _QUARTER_TURNS:  # shown turned
                width, height = height, width
            return Picture(mime, width, height)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PublishRejected(f"the image cannot be read ({type(exc).__name__})") from exc


def fit(data: bytes, max_bytes: int) -> bytes:
    """``data`` itself when it is at most ``max_bytes``; else the image recompressed as JPEG
    (transparency flattened on white, EXIF orientation applied, metadata dropped), at the
    best quality and largest size that fit.

    Raises:
        PublishRejected: ``data`` is not a readable image, or no size above ``MIN_SIDE``
            pixels fits (the message says how large it was).
    """
    if len(data) <= max_bytes:
        return data
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise PublishRejected(
                    f"the image is {opened.width}×{opened.height} pixels: too large to resize"
                )
            opened.seek(0)  # an animation: its first frame
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PublishRejected(f"the image cannot be read ({type(exc).__name__})") from exc
    image = _flatten(image)
    width, height = image.size
    while min(width, height) >= MIN_SIDE:
        sized = image if (width, height) == image.size else image.resize((width, height))
        for quality in QUALITIES:
            out = io.BytesIO()
            sized.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
            if out.tell() <= max_bytes:
                return out.getvalue()
        width, height = int(width * SCALE_STEP), int(height * SCALE_STEP)
    raise PublishRejected(
        f"the image ({len(data):,} bytes) cannot be made to fit {max_bytes:,} bytes"
    )


def _flatten(image: PILImage) -> PILImage:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image.convert("RGB") if image.mode != "RGB" else image
