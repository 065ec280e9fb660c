"""Settings of updates: which release keys the kit trusts, where bundles come from, the trial."""

from kit.settings import Setting

SETTINGS = [
    Setting(
        "update.trusted_keys",
        [],
        "Release public keys this kit trusts (each the text of a release.pub file, "
        "or its base64 key); set at image build or by personalise.sh --release-key. A key inside a bundle is "
        "never trusted.",
        type="list",
    ),
    Setting(
        "update.path",
        "/media/fieldkit-usb/fieldkit-update",
        "Folder on the USB stick where the kit looks for release bundles (*.fkb).",
    ),
    Setting(
        "update.trial_seconds",
        120,
        "How long a new release has to prove itself (every service healthy, "
        "`fieldkit doctor` without FAIL) before the kit switches back by itself.",
    ),
    Setting(
        "update.busy_admission_minutes",
        30,
        "The doors count as open (no update unless a lead says so) "
        "this many minutes after an admission outside rehearsal.",
    ),
    Setting(
        "update.busy_sale_minutes",
        10,
        "The merch table counts as selling (no update unless a lead says so) "
        "this many minutes after a sale in an open shift.",
    ),
    Setting("update.min_free_mb", 100, "Free space the data partition must keep after installing a release."),
    Setting(
        "update.keep_releases",
        3,
        "Release slots kept on the data partition (the running one and the "
        "newest others; older ones are removed after a kept update).",
    ),
]
