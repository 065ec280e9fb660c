"""The kit's HTTP client for HQ: one keep-alive connection per session, gzip JSON-lines uploads.

Errors are sorted by what the agent should do about them:
``HQUnreachable`` (no route, timeout, cut connection, 5xx): wait and try again later;
``HQRejectsKit`` (401/403/404): the kit's URL or token is wrong, a lead must fix it;
``BatchRejected`` (any other 4xx for the whole batch): split the batch, park a single record.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote  # JSON string, non-ASCII kept (C)
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, urlsplit

from kit.ledger import Event, canonical_json

if TYPE_CHECKING:
    import http.client


class SyncError(Exception):
    pass


class HQUnreachable(SyncError):
    pass


class HQRejectsKit(SyncError):
    pass


class BatchRejected(SyncError):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass
class HQMark:
    """What HQ holds from this kit: its mark and the seq ranges below it that it lacks."""

    hwm: int
    missing: list[tuple[int, int]]


@dataclass
class UploadAnswer:
    results: list[dict]
    hwm: int


class Outgoing(NamedTuple):
    """One ledger event ready to send: its seq and id (to read HQ's answer by) and its JSON line."""

    seq: int
    id: str
    line: str


def event_line(seq: int, id_: str, kit: str, type_: str, payload_text: str, hlc: int, wall_time: str,
               clock_synced: object, digest: str) -> str:
    """An event's upload line, built from the ledger's columns as they are stored.

    The ledger keeps the payload as canonical JSON text, so it goes out as it is instead of being parsed
    and dumped again for every event; HQ parses and checks it like any other line (a damaged one is
    refused and parked, never stored).
    """
    return (f'{{"seq":{int(seq)},"id":{_quote(id_)},"kit":{_quote(kit)},"type":{_quote(type_)},'
            f'"payload":{payload_text},"hlc":{int(hlc)},"wall_time":{_quote(wall_time)},'
            f'"clock_synced":{"true" if clock_synced else "false"},"hash":{_quote(digest)}}}')


def outgoing(event: Event) -> Outgoing:
    return Outgoing(event.seq, event.id, event_line(event.seq, event.id, event.kit, event.type,
                                                    canonical_json(event.payload), event.hlc, event.wall_time,
                                                    event.clock_synced, event.hash))


def encode_batch(events: list[Outgoing]) -> bytes:
    # Level 1: on a Pi the CPU is scarcer than the few per cent more bytes level 5 would save.
    return gzip.compress("\n".join(e.line for e in events).encode(), compresslevel=1)


class HQClient:
    def __init__(self, url: str, token: str, kit: str, timeout: float = 20.0, ca_file: str = ""):
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SyncError(f"HQ address {url!r} must start with http:// or https://")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path
        self.token, self.kit, self.timeout = token, kit, timeout
        self.ca_file = ca_file
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        import http.client  # here, not at the top: the sync service runs in a group that never calls HQ offline

        if self._conn is None:
            if self.scheme == "https":
                context = ssl.create_default_context(cafile=self.ca_file or None)
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._conn.connect()
            # http.client sends the headers and the body in two writes: without NODELAY, Nagle and the
            # peer's delayed ACK can add 40 ms to every batch.
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                auth: bool = True, while_waiting: Callable[[], None] | None = None,
                route_may_lack: bool = False) -> tuple[int, dict, bytes]:
        """One request; ``while_waiting`` runs once the request is sent, while HQ works on it.

        ``route_may_lack``: a 404 is answered, not raised (a route an older HQ does not have)."""
        import http.client

        hdrs = {"User-Agent": "fieldkit-sync", **(headers or {})}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            conn = self._connection()
            conn.request(method, self.base + path, body=body, headers=hdrs)
            if while_waiting is not None:
                try:
                    while_waiting()
                except BaseException:
                    self.close()  # its answer is still on the way: this connection is spent
                    raise
            response = conn.getresponse()
            data = response.read()
            status, rheaders = response.status, {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as e:  # timeouts and TLS errors are OSErrors
            self.close()  # a half-used connection cannot be trusted again
            raise HQUnreachable(f"HQ at {self.scheme}://{self.host}:{self.port} unreachable: {e.__class__.__name__}: {e}") from None
        if rheaders.get("connection", "").lower() == "close":
            self.close()
        if status >= 500 or status == 429:
            raise HQUnreachable(f"HQ answered {status}: {_error_text(data)}")
        if status in (401, 403, 404) and auth and not (status == 404 and route_may_lack):
            raise HQRejectsKit(f"HQ refuses kit {self.kit!r} ({status}): {_error_text(data)}; check `fieldkit sync join`")
        return status, rheaders, data

    def _json(self, method: str, path: str, **kw) -> dict:
        status, _, data = self.request(method, path, **kw)
        try:
            answer = json.loads(data)
        except ValueError:
            raise HQUnreachable(f"HQ answered {status} with something that is not JSON (a captive portal?)") from None
        if not isinstance(answer, dict):
            raise HQUnreachable("HQ answered with unexpected JSON")
        if status >= 400:
            raise BatchRejected(_error_text(data), status)
        return answer

    def kit_path(self, tail: str) -> str:
        return f"/api/v1/kits/{quote(self.kit, safe='')}/{tail}"

    def health(self) -> dict:
        answer = self._json("GET", "/api/v1/health", auth=False)
        if answer.get("status") != "ok":
            raise HQUnreachable(f"HQ is not healthy: {answer}")
        return answer

    def hwm(self) -> int:
        return self.mark().hwm

    def mark(self) -> HQMark:
        answer = self._json("GET", self.kit_path("hwm"))
        if not _is_int(answer.get("hwm")):
            raise HQUnreachable(f"HQ answered an unexpected high-water mark: {str(answer)[:200]}")
        missing = answer.get("missing", [])  # an older HQ does not say; then there is nothing to restore
        if not isinstance(missing, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(_is_int(v) for v in r) and 1 <= r[0] <= r[1] for r in missing):
            raise HQUnreachable(f"HQ answered missing ranges this kit cannot read: {str(missing)[:200]}")
        return HQMark(answer["hwm"], [(r[0], r[1]) for r in missing])

    def upload(self, events: list[Outgoing], body: bytes | None = None,
               while_waiting: Callable[[], None] | None = None) -> UploadAnswer:
        """Send one batch (``body``: its encode_batch, when made ahead); HQ answers for every record."""
        status, _, data = self.request("POST", self.kit_path("events"), body=body or encode_batch(events), headers={
            "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}, while_waiting=while_waiting)
        try:
            answer = json.loads(data)
        except ValueError:
            raise HQUnreachable(f"HQ answered {status} with something that is not JSON") from None
        if status in (200, 422) and isinstance(answer, dict) and isinstance(answer.get("results"), list):
            if len(answer["results"]) != len(events):
                raise HQUnreachable(f"HQ answered {len(answer['results'])} results for {len(events)} records")
            if not all(isinstance(r, dict) for r in answer["results"]):
                raise HQUnreachable("HQ answered results this kit cannot read")
            hwm = answer.get("hwm")
            return UploadAnswer(answer["results"], hwm if isinstance(hwm, int) and not isinstance(hwm, bool) else 0)
        raise BatchRejected(_error_text(data), status)

    def upload_personal(self, records: list[dict]) -> list[dict]:
        """Send personal records (kit/personal.py); HQ answers for each: stored, duplicate or refused."""
        status, _, data = self.request("POST", self.kit_path("personal"), body=json.dumps({"records": records}).encode(),
                                       headers={"Content-Type": "application/json"})
        try:
            answer = json.loads(data)
        except ValueError:
            raise HQUnreachable(f"HQ answered {status} with something that is not JSON") from None
        results = answer.get("results") if isinstance(answer, dict) else None
        if status in (200, 422) and isinstance(results, list) and len(results) == len(records) \
                and all(isinstance(r, dict) for r in results):
            return results
        raise BatchRejected(_error_text(data), status)

    def manifest(self, origin: str | None = None) -> list[dict]:
        """The documents HQ has for this kit, or (a hub's relay token) for ``origin``, a kit of its site."""
        tail = "documents" if origin is None else f"relay/documents?origin={quote(origin, safe='')}"
        path = self.kit_path(tail)
        docs = self._json("GET", path).get("documents")
        needed = {"id": int, "kind": str, "version": int, "filename": str, "sha256": str}
        if not isinstance(docs, list) or not all(
                isinstance(d, dict) and all(isinstance(d.get(k), t) for k, t in needed.items()) for d in docs):
            raise HQUnreachable("HQ answered a document manifest this kit cannot read")
        return docs

    def download(self, doc_id: int, origin: str | None = None) -> bytes:
        path = f"documents/{int(doc_id)}"
        if origin is not None:
            path = f"relay/{path}?origin={quote(origin, safe='')}"
        status, _, data = self.request("GET", self.kit_path(path))
        if status != 200:
            raise BatchRejected(_error_text(data), status)
        return data


    def post_status(self, status: dict) -> dict | None:
        """Post the kit's live state (sync/fleet_status.py); returns the bundle HQ offers, if any.

        An HQ from before the fleet view answers 404 or 405: no offer, and the session carries on.
        """
        status_, _, data = self.request("POST", self.kit_path("status"), body=json.dumps(status).encode(),
                                        headers={"Content-Type": "application/json"}, route_may_lack=True)
        if status_ in (404, 405):
            return None
        try:
            answer = json.loads(data)
        except ValueError:
            raise HQUnreachable(f"HQ answered {status_} to the status with something that is not JSON") from None
        if status_ != 200 or not isinstance(answer, dict):
            raise BatchRejected(_error_text(data), status_)
        offer = answer.get("offer")
        return offer if isinstance(offer, dict) else None

    def fetch_range(self, path: str, first: int, last: int, sink: Callable[[bytes], None],
                    piece: int = 64 * 1024) -> tuple[int, int]:
        """GET bytes first..last of ``path``, handing each piece to ``sink`` as it arrives (never all in memory).

        Returns (bytes received, total size HQ says the file has). HQ must answer 206 with exactly the
        range asked for; anything else is an error, so a wrong answer never lands in the file.
        """
        import http.client

        hdrs = {"User-Agent": "fieldkit-sync", "Authorization": f"Bearer {self.token}",
                "Range": f"bytes={int(first)}-{int(last)}"}
        received = 0
        try:
            conn = self._connection()
            conn.request("GET", self.base + path, headers=hdrs)
            response = conn.getresponse()
            if response.status != 206:
                data = response.read(4096)
                self.close()
                if response.status in (401, 403):
                    raise HQRejectsKit(f"HQ refuses kit {self.kit!r} ({response.status}): {_error_text(data)}")
                if response.status >= 500 or response.status == 429:
                    raise HQUnreachable(f"HQ answered {response.status}: {_error_text(data)}")
                raise BatchRejected(_error_text(data), response.status)
            m = _CONTENT_RANGE.match(response.getheader("Content-Range", ""))
            if not m or int(m.group(1)) != first or int(m.group(2)) != last:
                self.close()
                raise HQUnreachable(f"HQ answered a different range than asked ({response.getheader('Content-Range')!r})")
            while chunk := response.read(min(piece, last - first + 1 - received)):
                received += len(chunk)
                sink(chunk)
                if received >= last - first + 1:
                    break
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise HQUnreachable(f"download from HQ cut off after {received} bytes: {e.__class__.__name__}: {e}") from None
        if received != last - first + 1:
            self.close()
            raise HQUnreachable(f"download from HQ cut off after {received} of {last - first + 1} bytes")
        return received, int(m.group(3))


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_text(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", ""))[:300]
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")
