"""Print documents: the small format the print queue and ``pos/cmd/print`` carry (kit/topics.py).

``{"id", "source", "lines": [{"text", "align", "bold", "size"} | {"qr": "..."} | {"cut": true}]}``.
Receipts, Z reports and other features' sheets are all built as these, rendered to ESC/POS by
drivers/printer.py and to HTML for the preview, so the preview is what the paper shows.
"""

from __future__ import annotations

import unicodedata

ALIGNS = ("left", "center", "right")
SIZES = ("normal", "tall", "wide", "double")
MAX_LINES = 600
MAX_TEXT = 200
MAX_QR = 500


class PrintDocumentError(ValueError):
    """A print document from another feature is not in the agreed shape."""


def text(t: str, align: str = "left", bold: bool = False, size: str = "normal") -> dict:
    return {"text": t, "align": align, "bold": bold, "size": size}


def two_cols(left: str, right: str, width: int, bold: bool = False) -> dict:
    room = max(width - len(right) - 1, 1)
    if len(left) > room:
        left = left[: room - 1] + "." if room > 1 else left[:room]
    return text(left + " " * (width - len(left) - len(right)) + right, bold=bold)


def rule(width: int, char: str = "-") -> dict:
    return text(char * width)


def blank() -> dict:
    return text("")


def qr(content: str) -> dict:
    return {"qr": content}


def cut() -> dict:
    return {"cut": True}


def _clean_text(value: str) -> str:
    # Control characters would be ESC/POS commands on the wire: never pass them through.
    return "".join(c for c in value if unicodedata.category(c)[0] != "C")[:MAX_TEXT]


def _size(value: object) -> object:
    """Sizes as names, or as a magnification like ``2`` (what some senders write): 1 is normal, more is double."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return "normal" if value == 1 else "double"
    return {"large": "double", "big": "double", "2x": "double", "small": "normal"}.get(value, value) \
        if isinstance(value, str) else value


def validate_document(doc: object) -> list[dict]:
    """Check a print document from the bus; return its normalised lines or raise PrintDocumentError."""
    if not isinstance(doc, dict):
        raise PrintDocumentError("a print document must be a JSON object")
    lines = doc.get("lines")
    if not isinstance(lines, list) or not lines:
        raise PrintDocumentError("'lines' must be a non-empty list")
    if len(lines) > MAX_LINES:
        raise PrintDocumentError(f"{len(lines)} lines is more than the {MAX_LINES} a print job may have")
    out: list[dict] = []
    for i, line in enumerate(lines, start=1):
        if not isinstance(line, dict):
            raise PrintDocumentError(f"line {i}: must be an object")
        if "qr" in line:
            content = line["qr"]
            if not isinstance(content, str) or not content or len(content) > MAX_QR:
                raise PrintDocumentError(f"line {i}: qr must be text of 1 to {MAX_QR} characters")
            out.append(qr(content))
        elif line.get("cut"):
            out.append(cut())
        elif "text" in line:
            if not isinstance(line["text"], str):
                raise PrintDocumentError(f"line {i}: text must be a string")
            align = line.get("align", "left")
            size = _size(line.get("size", "normal"))
            if align not in ALIGNS:
                raise PrintDocumentError(f"line {i}: align must be one of {', '.join(ALIGNS)}")
            if size not in SIZES:
                raise PrintDocumentError(f"line {i}: size must be one of {', '.join(SIZES)} (or 1-8)")
            out.append(text(_clean_text(line["text"]), align, bool(line.get("bold", False)), size))
        else:
            raise PrintDocumentError(f"line {i}: needs 'text', 'qr' or 'cut'")
    return out
