"""Settings of the sync agent (kit side) and of HQ (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    # --- the kit's sync agent ---
    Setting("sync.hq_url", "", "HQ address, e.g. https://hq.example.org (written by `fieldkit sync join`); empty: no sync."),
    Setting("sync.hq_token", "", "This kit's HQ token when it cannot be kept in the state dir; `fieldkit sync join` keeps it there instead.",
            secret=True),
    Setting("sync.hq_ca_file", "", "A CA certificate file to trust for HQ's TLS certificate (a private CA); empty: the system's."),
    Setting("sync.batch_size", 500, "Events per upload request."),
    Setting("sync.interval_seconds", 30, "While online, how often to look for new events and documents."),
    Setting("sync.retry_min_seconds", 2.0, "First wait after HQ could not be reached; doubles on each failure (with jitter)."),
    Setting("sync.retry_max_seconds", 300.0, "Longest wait between attempts to reach HQ."),
    Setting("sync.timeout_seconds", 20.0, "How long one request to HQ may take before the connection counts as lost."),
    Setting("sync.apply_documents", True,
            "Import documents from HQ with the owning feature's importer as soon as they arrive (else only store and announce)."),
    Setting("sync.telemetry_host", "", "MQTT broker at HQ for the optional, lossy power telemetry bridge; empty: no bridge."),
    Setting("sync.telemetry_port", 8883, "Port of HQ's telemetry broker (8883: MQTT over TLS)."),
    Setting("sync.telemetry_tls", True, "Use TLS for the telemetry bridge (system CA, or sync.hq_ca_file)."),
    Setting("sync.telemetry_username", "", "User name at HQ's telemetry broker."),
    Setting("sync.telemetry_password", "", "Password at HQ's telemetry broker.", secret=True),
    # --- the site's mirror (sync/mirror.py) and the USB replica (sync/replica.py) ---
    Setting("site.mirror_peers", [], "Kit ids that keep a mirror of every kit's ledger besides the site's hub "
            "(one is enough: a second copy on another kit of the site).", type="list"),
    Setting("site.mirror", True, "Copy this kit's ledger to the site's mirrors (the hub, site.mirror_peers) as it is "
            "written; a mirror kit also keeps the other kits' copies."),
    Setting("backup.path", "", "A folder for a continuous replica of this kit (ledger, documents, snapshots); empty: "
            "the fieldkit-backup folder of a USB drive mounted at /media/fieldkit-usb, when there is one."),
    Setting("backup.snapshot_minutes", 10, "How often the replica takes a consistent snapshot of the whole database."),
    # --- HQ (`fieldkit hq ...`) ---
    Setting("hq.database_url", "", "HQ database: sqlite:///path or postgresql://user@host/db; empty: hq.db in the data dir."),
    Setting("hq.host", "127.0.0.1", "Address `fieldkit hq serve` listens on (put a TLS reverse proxy in front)."),
    Setting("hq.port", 8090, "Port `fieldkit hq serve` listens on."),
    Setting("hq.threads", 8, "Waitress worker threads of one HQ process."),
    Setting("hq.max_body_mb", 16, "Largest upload body HQ accepts, in MB (compressed)."),
    Setting("hq.trusted_proxies", [], "Addresses or CIDR blocks of load balancers in front of HQ; only from these is "
            "X-Forwarded-For believed for the client address (the bad-token throttle counts per client address)."),
    Setting("hq.personal_keep_days", 90.0, "Days HQ keeps a personal record (a signup) after it arrived, for sites "
            "without their own rule (`fieldkit hq privacy set`); `fieldkit hq privacy erase` deletes what is due."),
    Setting("hq.bundle_dir", "", "Folder where HQ keeps release bundles (`fieldkit hq bundles add`); empty: bundles/ in the data dir."),
    Setting("hq.card_match_minutes", 10, "Card payments without a matching reference match a settlement of the same amount this close in time."),
]
