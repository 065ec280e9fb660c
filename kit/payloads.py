"""Checking what arrives on the bus before a feature acts on it.

Every payload on ``cmd/`` and every ``event/`` a feature listens to comes from the network (a peer kit
over the site bridge, a clumsy script, an attacker on the site Wi-Fi). A feature declares the fields it
reads and their types; ``checked`` wraps its handler so a payload with a wrong type is refused with
``event=bad_command topic=... reason=...`` and, when the command carries an id, an answer with
``ok: false`` on the feature's event topic; the handler only ever sees the types it declared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("fieldkit.bus")

Handler = Callable[[str, dict], None]
Answer = Callable[[str, dict], None]  # (topic the bad command came on, answer payload)


class Field(NamedTuple):
    types: type | tuple[type, ...]
    required: bool = False
    max_len: int | None = None  # for str / list / dict


def text(max_len: int = 200, required: bool = False) -> Field:
    return Field(str, required, max_len)


def number(required: bool = False) -> Field:
    return Field((int, float), required)


def flag(required: bool = False) -> Field:
    return Field(bool, required)


def items(max_len: int = 1000, required: bool = False) -> Field:
    return Field(list, required, max_len)


def mapping(max_len: int = 100, required: bool = False) -> Field:
    return Field(dict, required, max_len)


# Every command may carry these: the answer's id and who asked.
COMMON: dict[str, Field] = {"id": text(80), "by": text(40), "source": text(40)}


def problem(payload: Mapping[str, Any], fields: Mapping[str, Field]) -> str:
    """The first thing wrong with ``payload`` against ``fields`` (plus COMMON), or '' when it is fine."""
    for name, spec in {**fields, **{k: v for k, v in COMMON.items() if k not in fields}}.items():
        if name not in payload or payload[name] is None:
            if spec.required:
                return f"missing {name}"
            continue
        value = payload[name]
        # bool is an int in Python; a number field never takes true/false, a flag never takes 1/0.
        wrong_bool = isinstance(value, bool) and bool not in _as_tuple(spec.types)
        if wrong_bool or not isinstance(value, spec.types):
            return f"{name} must be {_type_names(spec.types)}, not {type(value).__name__}"
        if spec.max_len is not None and isinstance(value, str | list | dict) and len(value) > spec.max_len:
            return f"{name} is longer than {spec.max_len}"
    return ""


def refuse(topic: str, payload: Mapping[str, Any], reason: str, answer: Answer | None = None) -> None:
    log.warning("event=bad_command topic=%s reason=%r", topic[:200], reason)
    rid = payload.get("id")
    if answer is not None and isinstance(rid, str | int) and not isinstance(rid, bool):
        answer(topic, {"id": str(rid)[:80], "ok": False, "status": "rejected", "error": reason})


def checked(fields: Mapping[str, Field] | Callable[[str], Mapping[str, Field] | None], handler: Handler,
            answer: Answer | None = None) -> Handler:
    """``handler`` behind a type check. ``fields`` may depend on the topic (one spec per command name);
    a topic whose spec is None is refused as unknown."""

    def guarded(topic: str, payload: dict) -> None:
        spec = fields(topic) if callable(fields) else fields
        reason = "unknown command" if spec is None else problem(payload, spec)
        if reason:
            refuse(topic, payload, reason, answer)
            return
        handler(topic, payload)

    guarded.__name__ = getattr(handler, "__name__", "handler")
    return guarded


def downloads_dir(config) -> Path:
    """Where the sync agent stores documents from HQ; the only folder a bus message may name a file in."""
    return config.data_dir / "sync" / "documents"


def downloaded_document(config, payload: Mapping[str, Any]) -> Path:
    """The file a ``sync/event/document`` announcement names, if it lies in the kit's download folder.

    ValueError otherwise: ``/etc/passwd``, ``../../secrets/x`` and symlinks out of the folder are refused.
    """
    raw = payload.get("path")
    if not isinstance(raw, str) or not raw or len(raw) > 1000 or "\0" in raw:
        raise ValueError("path must be a file name in the kit's download folder")
    folder = downloads_dir(config).resolve()
    path = Path(raw).resolve()
    if not path.is_relative_to(folder) or path == folder:
        raise ValueError(f"{raw[:200]} is outside the kit's download folder")
    return path


DOCUMENT_EVENT: dict[str, Field] = {"kind": text(80, required=True), "path": text(1000),
                                    "source_version": Field((str, int)), "version": Field((str, int)),
                                    "applied": flag()}


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
             "list": "a list", "dict": "an object"}
    return " or ".join(dict.fromkeys(names.get(t.__name__, t.__name__) for t in _as_tuple(types)))
