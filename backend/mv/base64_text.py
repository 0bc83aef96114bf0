"""Base64 in pieces, for payloads of megabytes.

A worker thread holds the interpreter lock for the whole of one C call: `base64.b64decode`
of a 13 MB payload takes about 35 ms here, and the event loop waits that long for its next
turn. Pieces of `PIECE_CHARS` take about a millisecond each, and after each one the lock is
let go (`time.sleep(0)`), so the loop gets its turn in between instead of waiting for the
interpreter's 5 ms switch interval. Call these in a worker thread (`thread_pools.DECODING`).
"""

import binascii
import time

PIECE_CHARS = 256 * 1024
"""A multiple of 4: every piece but the last decodes on its own."""
PIECE_BYTES = PIECE_CHARS // 4 * 3


def decode(text: str) -> bytes:
    """Strict base64, whitespace allowed between characters; `ValueError` (or its subclass
    `binascii.Error`) when the text is not valid base64."""
    pieces: list[bytes] = []
    carried = ""
    padded = False
    for start in range(0, len(text), PIECE_CHARS):
        cleaned = carried + "".join(text[start : start + PIECE_CHARS].split())
        if padded and cleaned:
            raise ValueError("data after the padding")
        whole = len(cleaned) - len(cleaned) % 4
        chunk, carried = cleaned[:whole], cleaned[whole:]
        if chunk:
            pieces.append(binascii.a2b_base64(chunk, strict_mode=True))
            padded = chunk.endswith("=")
        time.sleep(0)
    if carried:
        raise ValueError("the length is not a multiple of 4")
    return b"".join(pieces)


def encode_pieces(data: bytes) -> list[bytes]:
    """Standard base64 without line breaks, in pieces of `PIECE_CHARS` that concatenate to
    the whole: for a body sent piece by piece, with no copy of the whole ever made."""
    pieces = []
    for start in range(0, len(data), PIECE_BYTES):
        pieces.append(binascii.b2a_base64(data[start : start + PIECE_BYTES], newline=False))
        time.sleep(0)
    return pieces


def encode(data: bytes) -> str:
    """Standard base64 without line breaks, as ASCII text."""
    return b"".join(encode_pieces(data)).decode("ascii")
