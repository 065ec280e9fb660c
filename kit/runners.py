"""Which loop each service name runs: the core's web and status services, then each feature's."""

from __future__ import annotations

from collections.abc import Callable


def service_names() -> list[str]:
    from kit.features import load_features

    return ["web", "status"] + [f.name for f in load_features() if f.service]


def service_loop(name: str) -> Callable | None:
    if name == "web":
        from kit.web.service import run_web

        return run_web
    if name == "status":
        from kit.status import run_status

        return run_status
    from kit.features import load_features

    for f in load_features():
        if f.name == name:
            return f.service
    return None
