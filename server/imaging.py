"""Image conversion between wire payloads and numpy arrays: the one place for it.

Inside the server every colour image is an (H, W, 4) uint8 RGBA array with
straight alpha, and every mask an (H, W) uint8 array (255 = regenerate).
"""

from __future__ import annotations

import cv2
import numpy as np

from paintwire.protocol import Encoding, ErrorCode, ImagePayload, PixelFormat, ProtocolError

RGBA = np.ndarray  # (H, W, 4) uint8
Mask = np.ndarray  # (H, W) uint8


def payload_to_array(payload: ImagePayload, field: str = "job.image") -> np.ndarray:
    """Decode a payload to RGBA (colour formats) or an (H, W) array (l8)."""
    if payload.encoding is Encoding.PNG:
        return _decode_png(payload, field)
    flat = np.frombuffer(payload.data, dtype=np.uint8)
    if payload.format is PixelFormat.L8:
        return flat.reshape(payload.height, payload.width)
    pixels = flat.reshape(payload.height, payload.width, 4)
    if payload.format is PixelFormat.BGRA8:
        return swap_red_blue(pixels)  # a copy in RGBA order
    return pixels


def swap_red_blue(array: np.ndarray) -> np.ndarray:
    """A copy of an (H, W, 4) array with channels 0 and 2 swapped (BGRA <-> RGBA).
    OpenCV's conversion runs at memory speed; numpy's fancy index ``[..., [2, 1, 0, 3]]``
    takes about five times as long (a 2048x2048 layer from Krita is 16 MiB)."""
    return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)


def _decode_png(payload: ImagePayload, field: str) -> np.ndarray:
    buf = np.frombuffer(payload.data, dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if payload.format is PixelFormat.L8 else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise ProtocolError(ErrorCode.BAD_IMAGE, "The PNG could not be decoded.", f"{field}.data")
    if img.dtype != np.uint8:  # 16-bit PNG: keep the high byte
        img = (img >> 8).astype(np.uint8)
    if payload.format is PixelFormat.L8:
        return img
    # One RGBA array and no second copy: a decoded 8192x8192 picture is 256 MiB.
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGBA)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA, dst=img)


def as_rgba(array: np.ndarray) -> np.ndarray:
    """An (H, W) grey or (H, W, 3) RGB array as opaque RGBA; RGBA arrays unchanged."""
    if array.ndim == 3 and array.shape[2] == 4:
        return array
    rgb = array if array.ndim == 3 else np.dstack([array, array, array])
    return np.dstack([rgb, np.full(array.shape[:2], 255, np.uint8)])


def array_to_payload(array: np.ndarray, fmt: PixelFormat = PixelFormat.RGBA8) -> ImagePayload:
    """Wrap an RGBA array (or an (H, W) mask for l8) as a raw payload.

    The payload's data is a read-only view of the pixels, not a copy: a result
    of 8192x8192 is 256 MiB, and msgpack reads a view as well as bytes. The
    caller must not change the array afterwards."""
    if fmt is PixelFormat.L8:
        if array.ndim != 2:
            raise ValueError("l8 needs an (H, W) array")
        return ImagePayload(array.shape[1], array.shape[0], fmt, _view(array))
    if array.ndim != 3 or array.shape[2] != 4:
        raise ValueError("rgba8/bgra8 need an (H, W, 4) array")
    if fmt is PixelFormat.BGRA8:
        array = swap_red_blue(array)
    return ImagePayload(array.shape[1], array.shape[0], fmt, _view(array))


def _view(array: np.ndarray) -> bytes:
    return memoryview(np.ascontiguousarray(array, np.uint8)).cast("B").toreadonly()  # type: ignore[return-value]


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGBA array or an (H, W) mask (for files and slow links)."""
    bgr = array if array.ndim == 2 else swap_red_blue(array)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()

