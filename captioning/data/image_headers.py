"""What decoding an encoded image would cost, read from its headers in pure Python, by the rules TensorFlow's
decoders follow.

`tf.io.decode_image` picks its decoder from the first bytes (a GIF is anything starting `GIF8`, whatever Pillow
thinks of the version), and each decoder allocates from its own header fields: a GIF frame is decoded at the size
in its own image descriptor (0x2C block), not the logical screen's, and every frame is decoded before the first is
returned. So a GIF costs, for each frame, the larger of its own area and the screen's; JPEG its first SOF
segment's size; PNG its IHDR; BMP its info header; a still WebP its VP8/VP8L/VP8X size. Bytes TensorFlow would
decode but this module cannot measure (JPEG XL, animated WebP, a header cut short) raise HeaderError, so that a
caller refuses them rather than waving them through; bytes of no format TensorFlow decodes give None.
"""

import dataclasses
import struct

from captioning.util.errors import InvalidInput


class HeaderError(InvalidInput):
    """Bytes TensorFlow would decode as an image whose cost cannot be read from its headers."""


@dataclasses.dataclass(frozen=True)
class ImageCost:
    format: str  # JPEG, PNG, GIF, BMP or WEBP
    width: int  # the canvas (a GIF's logical screen)
    height: int
    frames: int  # 1 but for a GIF
    pixels: int  # what the decoder allocates, summed over the frames it decodes


# TensorFlow's magic bytes (decode_image_op.cc: ClassifyFileFormat).
_JPEG, _PNG, _GIF, _BMP = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM"
_JPEG_XL = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")


def measure(data: bytes) -> ImageCost | None:
    """The cost of decoding `data` as TensorFlow would; None for bytes TensorFlow decodes as no image at all."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if data.startswith(_JPEG):
        return _jpeg(data)
    if data.startswith(_PNG):
        return _png(data)
    if data.startswith(_GIF):
        return _gif(data)
    if data.startswith(_BMP):
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data.startswith(_JPEG_XL):
        raise HeaderError(
            "JPEG XL images are not accepted: their size cannot be checked before decoding "
            "(use JPEG, PNG, BMP, GIF or WebP)"
        )
    return None


def _unpack(layout: str, data: bytes, offset: int) -> tuple:
    if offset + struct.calcsize(layout) > len(data):
        raise HeaderError("image header is cut short")
    return struct.unpack_from(layout, data, offset)


def _still(format_name, width, height) -> ImageCost:
    return ImageCost(format_name, width, height, 1, width * height)


# Start-of-frame markers: 0xC0-0xCF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length


def _jpeg(data: bytes) -> ImageCost:
    position = 2
    while True:
        if _unpack("B", data, position)[0] != 0xFF:
            raise HeaderError("JPEG segments are malformed before the frame header")
        while _unpack("B", data, position)[0] == 0xFF:  # fill bytes
            position += 1
        marker = data[position]
        position += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise HeaderError("JPEG has no frame header before its data")
        (length,) = _unpack(">H", data, position)
        if marker in _SOF:
            height, width = _unpack(">HH", data, position + 3)
            return _still("JPEG", width, height)
        if length < 2:
            raise HeaderError("JPEG segment length is malformed")
        position += length


def _png(data: bytes) -> ImageCost:
    if data[12:16] != b"IHDR":
        raise HeaderError("PNG does not start with its IHDR chunk")
    width, height = _unpack(">II", data, 16)
    return _still("PNG", width, height)


def _bmp(data: bytes) -> ImageCost:
    width, height = _unpack("<ii", data, 18)  # where TensorFlow's decoder reads them, whatever the header's kind
    if width < 0:
        raise HeaderError("BMP width is negative")
    return _still("BMP", width, abs(height))  # a negative height is a top-down bitmap


def _colour_table(packed: int) -> int:
    return 3 * (2 << (packed & 7)) if packed & 0x80 else 0


def _gif(data: bytes) -> ImageCost:
    """Walks every block as giflib's DGifSlurp does: each image descriptor seen is one frame allocated at its own
    size (even when its data is cut short); the walk stops at the trailer, the end or a block giflib rejects."""
    width, height, packed = _unpack("<HHB", data, 6)
    screen = width * height
    position = 13 + _colour_table(packed)
    frames = pixels = 0
    while position < len(data):
        block = data[position]
        if block == 0x2C:  # image descriptor: separator, left, top, width, height, packed
            if position + 10 > len(data):
                break
            frame_width, frame_height, frame_packed = struct.unpack_from("<HHB", data, position + 5)
            frames += 1
            pixels += max(frame_width * frame_height, screen)
            position = _skip_sub_blocks(data, position + 11 + _colour_table(frame_packed))
        elif block == 0x21:  # extension: separator, label, data sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        else:  # the trailer (0x3B) or a record giflib refuses
            break
    return ImageCost("GIF", width, height, frames, pixels)


def _skip_sub_blocks(data: bytes, position: int) -> int:
    """The position after a chain of data sub-blocks (length byte, then that many bytes; 0 ends it)."""
    while position < len(data):
        length = data[position]
        position += 1 + length
        if length == 0:
            break
    return position


def _webp(data: bytes) -> ImageCost:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a 3-byte frame tag, the start code, then 14-bit width and height
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 frame header is malformed")
        width, height = _unpack("<HH", data, 26)
        return _still("WEBP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":  # lossless: a signature byte, then 14 bits each of width - 1 and height - 1
        if _unpack("B", data, 20)[0] != 0x2F:
            raise HeaderError("WebP VP8L header is malformed")
        (bits,) = _unpack("<I", data, 21)
        return _still("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: flags, then 24 bits each of canvas width - 1 and height - 1
        (flags,) = _unpack("B", data, 20)
        if flags & 0x02:
            raise HeaderError("animated WebP images are not accepted: their frames cannot be checked before decoding")
        low_w, high_w, low_h, high_h = _unpack("<HBHB", data, 24)
        return _still("WEBP", (low_w | high_w << 16) + 1, (low_h | high_h << 16) + 1)
    raise HeaderError("WebP has no VP8, VP8L or VP8X chunk first")
