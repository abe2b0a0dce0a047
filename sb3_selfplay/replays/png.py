"""RGB images as PNG, in numpy and zlib (no imaging library needed).

Replays of games without a vector drawing store their ``render()`` frames as PNG (base64 in the
JSON). The encoder writes 8-bit RGB with the "Up" filter on every row (consecutive rows of game
pictures are alike, so the differences compress well); the decoder reads that and the "None"
and "Sub" filters, and hands any other PNG to Pillow.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import zlib

import numpy as np

__all__ = ["decode_png", "encode_png", "png_from_base64", "png_to_base64"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """
    :param image: ``uint8`` RGB array of shape ``(height, width, 3)`` (grey ``(H, W)`` and RGBA are
        converted: grey repeated, alpha dropped).
    :param level: zlib compression level (1 fast ... 9 small).
    :return: The PNG file's bytes.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"encode_png needs an (H, W, 3) RGB image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8 pixels, got {img.dtype}")
    img = np.ascontiguousarray(img[:, :, :3])
    h, w = img.shape[:2]
    rows = img.reshape(h, w * 3)
    up = np.empty((h, w * 3 + 1), np.uint8)
    up[:, 0] = 2  # filter type "Up": each byte minus the one above it
    up[0, 1:] = rows[0]
    up[1:, 1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(up.tobytes(), level)) + _chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """
    :param data: A PNG file's bytes.
    :return: ``uint8`` RGB array of shape ``(height, width, 3)``.
    :raises ValueError: If the data is not a PNG this decoder (or Pillow, for other kinds) reads.
    """
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG image")
    pos, header, idat = len(_SIGNATURE), None, []
    try:
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
    except struct.error:
        raise ValueError("truncated PNG image") from None
    if header is None:
        raise ValueError("PNG image without a header")
    w, h, depth, colour, _, _, interlace = header
    if (depth, colour, interlace) != (8, 2, 0):
        return _decode_with_pillow(data)
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise ValueError(f"corrupt PNG image data ({exc})") from None
    if raw.size != h * (w * 3 + 1):
        raise ValueError(f"PNG image data of {raw.size} bytes for a {w}x{h} RGB image")
    rows = raw.reshape(h, w * 3 + 1)
    filters, out = rows[:, 0], rows[:, 1:].copy()
    if np.any(filters > 2):
        return _decode_with_pillow(data)
    for r in range(h):  # rows depend on the row above, so one pass down the image
        if filters[r] == 1:  # Sub: each byte plus the one 3 to its left
            out[r] = np.cumsum(out[r].reshape(w, 3), axis=0, dtype=np.uint8).reshape(-1)
        elif filters[r] == 2 and r > 0:  # Up
            out[r] += out[r - 1]
    return out.reshape(h, w, 3)


def _decode_with_pillow(data: bytes) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("this PNG kind needs Pillow to decode: pip install pillow") from None
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def png_to_base64(image: np.ndarray, level: int = 6) -> str:
    """:func:`encode_png`, as base64 text (for JSON)."""
    return base64.b64encode(encode_png(image, level)).decode("ascii")


def png_from_base64(text: str) -> bytes:
    """
    :return: The PNG bytes of base64 ``text`` (checked: only the base64 alphabet, a PNG signature).
    :raises ValueError: Otherwise.
    """
    if not isinstance(text, str) or not _BASE64.match(text):
        raise ValueError("an image must be base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("an image is not valid base64") from None
    if not data.startswith(_SIGNATURE):
        raise ValueError("an image is not a PNG")
    return data
