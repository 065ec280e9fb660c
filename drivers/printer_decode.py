"""ESC/POS bytes → text lines: what a receipt printer would put on paper, readable by a test or a person.

Covers the commands python-escpos emits for receipts (init, text modes, alignment, code pages,
feeds, cuts, native QR codes, raster images). Raster images are read back with zxing-cpp when it
is installed, so a QR code printed as a picture on a 58 mm printer is checked like a native one.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

ESC, GS, LF = 0x1B, 0x1D, 0x0A
# ESC commands and how many parameter bytes follow them.
_ESC_PARAMS = {0x21: 1, 0x45: 1, 0x2D: 1, 0x61: 1, 0x74: 1, 0x64: 1, 0x4D: 1, 0x7B: 1, 0x47: 1, 0x33: 1,
               0x32: 0, 0x56: 1, 0x4A: 1, 0x20: 1, 0x52: 1, 0x72: 1, 0x63: 2, 0x70: 3, 0x42: 2}
_GS_PARAMS = {0x21: 1, 0x42: 1, 0x62: 1, 0x48: 1, 0x66: 1, 0x68: 1, 0x77: 1, 0x4C: 2, 0x57: 2}
_ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}


@dataclass
class PrintedLine:
    text: str
    align: str = "left"
    bold: bool = False
    size: str = "normal"
    kind: str = "text"  # text | qr | image | cut


@dataclass
class _State:
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1
    codepage: int = 0
    buf: list[tuple[int, bytes]] = field(default_factory=list)


def _size(s: _State) -> str:
    return {(1, 1): "normal", (1, 2): "tall", (2, 1): "wide", (2, 2): "double"}.get((s.width, s.height), "double")


def _codec(code_pages: dict, n: int) -> str:
    name = str(code_pages.get(str(n), code_pages.get(n, "CP437"))).lower()
    try:
        codecs.lookup(name)
        return name
    except LookupError:
        return "cp437"


def _decode_raster(width_bytes: int, height: int, data: bytes) -> str:
    try:
        import numpy as np
        import zxingcpp
    except ImportError:
        return ""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).reshape(height, width_bytes * 8)
    img = np.where(bits == 1, 0, 255).astype(np.uint8)
    img = np.pad(img, 16, constant_values=255)
    found = zxingcpp.read_barcodes(img)
    return found[0].text if found else ""


def decode(data: bytes, code_pages: dict | None = None) -> list[PrintedLine]:
    """Parse ESC/POS bytes into printed lines (text with its style, QR codes, images, cuts)."""
    pages = code_pages or {"0": "CP437"}
    s = _State()
    out: list[PrintedLine] = []
    qr_data = b""
    i, n = 0, len(data)

    def flush(force: bool) -> None:
        if not s.buf and not force:
            return
        text = "".join(chunk.decode(_codec(pages, cp), errors="replace") for cp, chunk in s.buf)
        out.append(PrintedLine(text, s.align, s.bold, _size(s)))
        s.buf.clear()

    def add_text(b: bytes) -> None:
        if s.buf and s.buf[-1][0] == s.codepage:
            s.buf[-1] = (s.codepage, s.buf[-1][1] + b)
        else:
            s.buf.append((s.codepage, b))

    while i < n:
        b = data[i]
        if b == LF:
            flush(True)
            i += 1
        elif b == ESC and i + 1 < n:
            cmd = data[i + 1]
            if cmd == 0x40:  # ESC @ init
                flush(False)
                s = _State(buf=[])
                i += 2
                continue
            k = _ESC_PARAMS.get(cmd, 0)
            arg = data[i + 2] if k and i + 2 < n else 0
            if cmd == 0x21:  # ESC ! mode: bold 0x08, double height 0x10, double width 0x20
                s.bold, s.height, s.width = bool(arg & 0x08), 2 if arg & 0x10 else 1, 2 if arg & 0x20 else 1
            elif cmd == 0x45:
                s.bold = bool(arg & 1)
            elif cmd == 0x61:
                s.align = _ALIGN.get(arg, "left")
            elif cmd == 0x74:
                s.codepage = arg
            elif cmd == 0x64 and s.buf:
                flush(True)
            i += 2 + k
        elif b == GS and i + 1 < n:
            cmd = data[i + 1]
            if cmd == 0x56:  # GS V cut: m, plus n for m in 65/66
                flush(False)
                m = data[i + 2] if i + 2 < n else 0
                out.append(PrintedLine("", kind="cut"))
                i += 4 if m in (65, 66) else 3
            elif cmd == 0x28 and i + 4 < n and data[i + 2] == 0x6B:  # GS ( k: 2D codes
                length = data[i + 3] | (data[i + 4] << 8)
                body = data[i + 5:i + 5 + length]
                if len(body) >= 2 and body[0] == 0x31 and body[1] == 0x50:  # store QR data (after m)
                    qr_data = body[3:]
                elif len(body) >= 2 and body[0] == 0x31 and body[1] == 0x51:  # print the stored QR code
                    flush(False)
                    out.append(PrintedLine(qr_data.decode("utf-8", errors="replace"), s.align, kind="qr"))
                i += 5 + length
            elif cmd == 0x76 and i + 7 < n and data[i + 2] == 0x30:  # GS v 0 raster image
                flush(False)
                wb = data[i + 4] | (data[i + 5] << 8)
                h = data[i + 6] | (data[i + 7] << 8)
                raster = data[i + 8:i + 8 + wb * h]
                content = _decode_raster(wb, h, raster)
                out.append(PrintedLine(content, s.align, kind="qr") if content
                           else PrintedLine(f"{wb * 8}x{h}", s.align, kind="image"))
                i += 8 + wb * h
            elif cmd == 0x21 and i + 2 < n:  # GS ! size: high nibble width-1, low nibble height-1
                s.width, s.height = (data[i + 2] >> 4) + 1, (data[i + 2] & 0x0F) + 1
                i += 3
            else:
                i += 2 + _GS_PARAMS.get(cmd, 0)
        elif b < 0x20:
            i += 1  # other control bytes print nothing
        else:
            j = i
            while j < n and data[j] >= 0x20 and data[j] not in (ESC, GS):
                j += 1
            add_text(data[i:j])
            i = j
    flush(False)
    return out


def text_lines(data: bytes, code_pages: dict | None = None) -> list[str]:
    """Just the text: QR codes as ``[QR <content>]``, images as ``[IMAGE WxH]``, cuts as ``[CUT]``."""
    result = []
    for line in decode(data, code_pages):
        if line.kind == "qr":
            result.append(f"[QR {line.text}]")
        elif line.kind == "image":
            result.append(f"[IMAGE {line.text}]")
        elif line.kind == "cut":
            result.append("[CUT]")
        else:
            result.append(line.text)
    return result
