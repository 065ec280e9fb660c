"""Optional power telemetry to HQ over a Mosquitto bridge.

This path is lossy by design: QoS 0, a clean session, no queue worth the name. A bridge drops what
arrives while the link is down and Mosquitto bridges lose queued messages in several known cases.
That is fine for a battery gauge on a map at HQ; sales and admissions go through the ledger upload.
"""

from __future__ import annotations

from kit.config import Config
from sync.client import SyncError

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


def telemetry_bridge_conf(config: Config) -> str:
    host = (config["sync.telemetry_host"] or "").strip()
    if not host:
        raise SyncError("set sync.telemetry_host (and port, user, password) in fieldkit.toml first")
    kit = config.kit_id
    lines = [
        "# Field Kit: power telemetry to HQ. LOSSY by design (QoS 0, clean session):",
        "# messages are dropped while the uplink is down. Sales and admissions never go this way;",
        "# they are uploaded from the ledger by the sync agent.",
        f"connection fieldkit-telemetry-{kit}",
        f"address {host}:{int(config['sync.telemetry_port'])}",
        f"remote_clientid fieldkit-{kit}-telemetry",
        "bridge_protocol_version mqttv311",
        "cleansession true",
        "start_type automatic",
        "restart_timeout 10 300",
        "notifications false",
        "try_private false",
        f"topic fieldkit/{kit}/power/state out 0",
        f"topic fieldkit/{kit}/power/event/# out 0",
    ]
    if config["sync.telemetry_username"]:
        lines.append(f"remote_username {config['sync.telemetry_username']}")
    if config["sync.telemetry_password"]:
        lines.append(f"remote_password {config['sync.telemetry_password']}")
    if config["sync.telemetry_tls"]:
        lines.append(f"bridge_cafile {config['sync.hq_ca_file'] or SYSTEM_CA}")
        lines.append("bridge_insecure false")
    return "\n".join(lines) + "\n"
