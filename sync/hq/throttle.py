"""Bad-token throttle per client address, kept in the database so every HQ process sees the same count.

After a few free failures, each further bad token from an address makes HQ refuse that address's
authenticated requests for a delay that doubles per failure (capped), answered 429 with Retry-After
and without looking at the token. A success, or a quiet spell, clears the count. Behind a load
balancer the address comes from X-Forwarded-For, but only when the direct peer is a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema

log = logging.getLogger("fieldkit.hq.throttle")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """``hq.trusted_proxies`` entries ("10.0.0.5", "10.0.0.0/8", "::1") as networks; ValueError on a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(f"hq.trusted_proxies: {entry!r} is not an address or CIDR block") from None
    return networks


def _address(text: str | None):
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the nearest untrusted hop."""
    addr = _address(peer)
    if addr is None:
        return "unknown"
    if not forwarded_for or not any(addr in net for net in trusted):
        return str(addr)
    # Walk X-Forwarded-For from the right: each trusted proxy appended the address it saw.
    for hop in reversed(forwarded_for.split(",")[:32]):
        hop_addr = _address(hop)
        if hop_addr is None:
            return str(addr)  # a garbled header: count the proxy itself rather than trust the rest
        if not any(hop_addr in net for net in trusted):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)


class AuthThrottle:
    def __init__(self, engine: Engine, free_failures: int = 5, base_seconds: float = 1.0, max_seconds: float = 60.0,
                 forget_after: timedelta = timedelta(minutes=15), now: Callable[[], datetime] | None = None) -> None:
        from sync.hq.store import now_utc

        self.engine, self.free, self.base, self.max = engine, free_failures, base_seconds, max_seconds
        self.forget_after = forget_after
        self.now = now or now_utc

    def delay(self, failures: int) -> float:
        """Seconds an address waits after its latest failure: 0 for the first few, then doubling, capped."""
        if failures <= self.free:
            return 0.0
        return min(self.max, self.base * 2 ** (failures - self.free - 1))

    def check(self, address: str, conn=None) -> tuple[int, bool]:
        """Seconds until ``address`` may try again (0: now), and whether it has recent failures on record.

        ``conn``: a connection the request already holds (the kit check then shares it)."""
        query = (sa.select(schema.auth_failures.c.failures, schema.auth_failures.c.last_failure)
                 .where(schema.auth_failures.c.address == address))
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            return 0, False
        last = _aware(row.last_failure)
        now = self.now()
        if now - last > self.forget_after:
            return 0, True
        wait = (last + timedelta(seconds=self.delay(row.failures)) - now).total_seconds()
        return max(0, math.ceil(wait)), True

    def failed(self, address: str) -> int:
        """Count one bad token from ``address``; returns the consecutive failures so far."""
        now = self.now()
        stale = now - self.forget_after
        table = schema.auth_failures
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(address=address, failures=1, last_failure=now)
        stmt = stmt.on_conflict_do_update(index_elements=["address"], set_={
            "failures": sa.case((table.c.last_failure < stale, 1), else_=table.c.failures + 1),
            "last_failure": now}).returning(table.c.failures)
        with self.engine.begin() as conn:
            failures = int(conn.execute(stmt).scalar_one())
            conn.execute(table.delete().where(table.c.last_failure < stale))  # forget quiet addresses
        if failures > self.free:
            log.warning("event=auth_throttled address=%s failures=%d wait_seconds=%.0f", address, failures,
                        self.delay(failures))
        return failures

    def succeeded(self, address: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(schema.auth_failures.delete().where(schema.auth_failures.c.address == address))


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
