#!/usr/bin/env bash
# Install Field Kit onto a Debian / Raspberry Pi OS system: the ONE installer every path uses
# (pi-gen's chroot, install.sh on a running Pi, the emulated image test). Idempotent: running it
# again updates the kit and leaves everything else as it is.
#
#   provision.sh --wheel dist/fieldkit-*.whl [--source DIR] [--readonly-root] [--no-apt]
#   provision.sh --packages-only [--readonly-root]   (only the Debian packages: the image test caches
#                                                     that layer and installs the kit on top each run)
#
# Environment:
#   FIELDKIT_DEBIAN_PYTHON  Debian Python packages taken from the distribution where available
#                           (default: numpy, OpenCV, Picamera2, lgpio, evdev, pyusb for the USB receipt
#                           printer — see REFERENCE.md)
#   FIELDKIT_EXTRA_APT      further Debian packages (default: mpv for sound cues)
#   FIELDKIT_KIOSK_APT      the kiosk on the attached screen (default: cage chromium xwayland; empty: none)
#   FIELDKIT_PIP_ARGS       extra arguments for pip (e.g. --index-url of a local mirror)
set -euo pipefail

log() { echo "provision: $*"; }
die() { echo "provision: error: $*" >&2; exit 1; }

SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEEL=""
READONLY_ROOT=false
APT=true
PACKAGES_ONLY=false
while [ "$#" -gt 0 ]; do
  case "$1" in
    --wheel) WHEEL=${2:?--wheel needs a path}; shift 2 ;;
    --source) SOURCE=${2:?--source needs a directory}; shift 2 ;;
    --readonly-root) READONLY_ROOT=true; shift ;;
    --no-apt) APT=false; shift ;;
    --packages-only) PACKAGES_ONLY=true; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root (sudo)"
$PACKAGES_ONLY || { [ -n "$WHEEL" ] && [ -f "$WHEEL" ]; } || die "--wheel must name the fieldkit wheel (build it with: pip wheel --no-deps -w dist .)"
$PACKAGES_ONLY || { [ -d "$SOURCE/systemd" ] && [ -d "$SOURCE/image-build/files" ]; } || die "$SOURCE is not a Field Kit source tree"

PREFIX=/opt/fieldkit
DATA=/var/lib/fieldkit
FILES=$SOURCE/image-build/files
export DEBIAN_FRONTEND=noninteractive

# Is systemd running this system (install.sh on a Pi) or are we in a chroot (image builds)?
booted=false
if [ -d /run/systemd/system ] && [ "$(stat -c %d:%i /)" = "$(stat -c %d:%i /proc/1/root/. 2>/dev/null)" ]; then
  booted=true
fi

# --- Debian packages --------------------------------------------------------------------------
# NetworkManager's hotspot needs wpa_supplicant (AP mode) and dnsmasq (its shared-mode DHCP), and nft for
# the shared mode's NAT: with --no-install-recommends none come along (Raspberry Pi OS ships them).
BASE_PACKAGES="python3 python3-venv python3-pip mosquitto mosquitto-clients network-manager polkitd dbus
  wpasupplicant dnsmasq-base nftables ca-certificates tzdata e2fsprogs"
DEBIAN_PYTHON=${FIELDKIT_DEBIAN_PYTHON-python3-numpy python3-opencv python3-picamera2 python3-lgpio python3-evdev python3-usb}
EXTRA_APT=${FIELDKIT_EXTRA_APT-mpv}
# Debian's cage is built with Xwayland support and refuses to start without the Xwayland binary.
KIOSK_APT=${FIELDKIT_KIOSK_APT-cage chromium xwayland}
available() {  # packages this distribution has a candidate for (python3-picamera2 is Raspberry Pi OS only)
  local p policy
  for p in "$@"; do
    policy=$(apt-cache policy "$p" 2>/dev/null || true)  # no pipe into grep -q: pipefail + SIGPIPE
    if [[ "$policy" == *"Candidate: "[!\(]* ]]; then echo "$p"; else echo "provision: $p is not available here, skipped" >&2; fi
  done
}
if $APT; then
  log "installing Debian packages"
  apt-get update -qq
  # shellcheck disable=SC2046,SC2086
  apt-get install -y -qq --no-install-recommends $BASE_PACKAGES $(available $DEBIAN_PYTHON $EXTRA_APT $KIOSK_APT)
  if $READONLY_ROOT && ! command -v raspi-config >/dev/null; then
    # overlayroot's initramfs scripts need busybox's grep, its hook copies mke2fs (e2fsprogs, above).
    apt-get install -y -qq --no-install-recommends busybox overlayroot
  fi
fi
if $PACKAGES_ONLY; then log "done: Debian packages only (--packages-only)"; exit 0; fi

# --- the service user and its groups ------------------------------------------------------------
GROUPS_NEEDED="gpio i2c spi dialout video input lp audio"
for g in $GROUPS_NEEDED; do
  getent group "$g" >/dev/null || { groupadd --system "$g"; log "created group $g"; }
done
getent group fieldkit >/dev/null || groupadd --system fieldkit
if ! id fieldkit >/dev/null 2>&1; then
  useradd --system --gid fieldkit --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
    --comment "Field Kit services" fieldkit
  log "created user fieldkit"
fi
usermod -a -G "$(echo $GROUPS_NEEDED | tr ' ' ',')" fieldkit
# The kiosk's browser runs as its own user: it may use the screen and the touch panel, not the kit's state.
getent group render >/dev/null || groupadd --system render
getent group fieldkit-kiosk >/dev/null || groupadd --system fieldkit-kiosk
if ! id fieldkit-kiosk >/dev/null 2>&1; then
  useradd --system --gid fieldkit-kiosk --home-dir /var/lib/fieldkit-kiosk --no-create-home \
    --shell /usr/sbin/nologin --comment "Field Kit kiosk screen" fieldkit-kiosk
fi
usermod -a -G video,render,input fieldkit-kiosk

# --- the kit itself: a venv that sees Debian's numpy, OpenCV, Picamera2, lgpio, evdev ---------------
if [ ! -x "$PREFIX/bin/python" ]; then
  log "creating $PREFIX (venv with system site packages)"
  python3 -m venv --system-site-packages "$PREFIX"
fi
# shellcheck disable=SC2086
"$PREFIX/bin/pip" install -q --disable-pip-version-check --no-cache-dir ${FIELDKIT_PIP_ARGS-} "$WHEEL"
# Same version number, new code (a rebuilt wheel): replace the package itself, keep its dependencies.
# shellcheck disable=SC2086
"$PREFIX/bin/pip" install -q --disable-pip-version-check --no-cache-dir --no-deps --force-reinstall ${FIELDKIT_PIP_ARGS-} "$WHEEL"
"$PREFIX/bin/fieldkit" --version >/dev/null || die "$PREFIX/bin/fieldkit does not run"
rm -f /usr/local/bin/fieldkit && install -m 0755 "$FILES/fieldkit-wrapper" /usr/local/bin/fieldkit
install -d -m 0755 "$PREFIX/share/doc"
for doc in appliance.md flash-and-boot.md; do
  [ ! -f "$SOURCE/docs/$doc" ] || install -m 0644 "$SOURCE/docs/$doc" "$PREFIX/share/doc/$doc"
done

# --- state, settings -------------------------------------------------------------------------------
# 0751: other users may only pass through, so Mosquitto (its own user) reaches its persistence in
# $DATA/mosquitto; the files in it are 0640/0600 (UMask=0027) and the secrets folder 0700.
install -d -m 0751 -o fieldkit -g fieldkit "$DATA"
[ ! -d "$DATA/secrets" ] || chmod 0700 "$DATA/secrets"
# The units start the release `releases/current` names (kit/update/slots.py); an install points it at this
# one. (A data partition mounted later over $DATA gets it from `fieldkit update recover` at boot.)
install -d -m 0755 "$DATA/releases"
ln -sfn "$PREFIX" "$DATA/releases/current"
install -d -m 0755 /etc/fieldkit /etc/issue.d /boot/firmware
[ -f /etc/fieldkit/kit.toml ] || install -m 0644 "$FILES/kit.toml" /etc/fieldkit/kit.toml
[ -f /etc/default/fieldkit ] || install -m 0644 "$FILES/default-fieldkit" /etc/default/fieldkit

# --- Mosquitto: a main file without listeners; fieldkit-boot writes conf.d/fieldkit.conf ---------
install -m 0644 "$FILES/mosquitto.conf" /etc/mosquitto/mosquitto.conf
install -d -m 0755 /etc/systemd/system/mosquitto.service.d
install -m 0644 "$FILES/mosquitto-fieldkit.conf" /etc/systemd/system/mosquitto.service.d/fieldkit.conf

# --- systemd units, polkit, udev, NetworkManager ----------------------------------------------------
for unit in "$SOURCE"/systemd/*.service "$SOURCE"/systemd/*.target "$SOURCE"/systemd/*.path "$SOURCE"/systemd/*.timer; do
  install -m 0644 "$unit" /etc/systemd/system/
done
install -d -m 0755 /etc/polkit-1/rules.d
install -m 0644 "$SOURCE/systemd/50-fieldkit.rules" /etc/polkit-1/rules.d/50-fieldkit.rules
install -m 0644 "$FILES/70-fieldkit.rules" /etc/udev/rules.d/70-fieldkit.rules
# One USB drive at /media/fieldkit-usb (the replica's fieldkit-backup, the updates' fieldkit-update).
install -m 0644 "$FILES/71-fieldkit-usb.rules" /etc/udev/rules.d/71-fieldkit-usb.rules
install -m 0644 "$FILES/media-fieldkit\\x2dusb.mount" '/etc/systemd/system/media-fieldkit\x2dusb.mount'
install -d -m 0755 /media/fieldkit-usb
install -d -m 0755 /etc/NetworkManager/conf.d
install -m 0644 "$FILES/NetworkManager-fieldkit.conf" /etc/NetworkManager/conf.d/fieldkit.conf

if $booted; then systemctl daemon-reload; fi
systemctl enable fieldkit.target fieldkit-hotspot.service mosquitto.service fieldkit-update.path fieldkit-update.timer
# Enabled everywhere; it decides at each start whether this machine shows it (kiosk.enabled, 1 GB, a screen).
systemctl enable fieldkit-kiosk.service
if systemctl list-unit-files NetworkManager.service >/dev/null 2>&1; then
  systemctl enable NetworkManager.service >/dev/null 2>&1 || true
fi
if $booted; then udevadm control --reload || true; fi

# --- the boot partition: fieldkit.toml holds Wi-Fi and HQ secrets. Root may write it, the services
# (group fieldkit) read it, other users see nothing. FAT has no owners, so this is a mount option.
fk_gid=$(getent group fieldkit | cut -d: -f3)
if grep -Eq '^[^#[:space:]]+[[:space:]]+/boot/firmware[[:space:]]+vfat[[:space:]]' /etc/fstab \
   && ! grep -Eq '^[^#[:space:]]+[[:space:]]+/boot/firmware[[:space:]]+vfat[[:space:]]+[^[:space:]]*gid=' /etc/fstab; then
  sed -i -E "s#^([^#[:space:]]+[[:space:]]+/boot/firmware[[:space:]]+vfat[[:space:]]+)([^[:space:]]+)#\\1\\2,uid=0,gid=$fk_gid,fmask=0137,dmask=0027#" /etc/fstab
  log "boot partition readable by group fieldkit only"
fi

# --- the saved clock (fake-hwclock) lives with the state, so a read-only root keeps it ---------------
if [ -f /etc/default/fake-hwclock ]; then
  sed -i '/^FILE=/d' /etc/default/fake-hwclock
  echo "FILE=$DATA/fake-hwclock.data" >>/etc/default/fake-hwclock
fi

# --- optional read-only root with a writable data partition (label FKDATA) ------------------------
if $READONLY_ROOT; then
  if $booted && ! blkid -L FKDATA >/dev/null 2>&1; then
    die "--readonly-root needs a partition labelled FKDATA for the kit's state (see docs/appliance.md); nothing was made read-only"
  fi
  # nofail: a missing data partition must not stop the boot (the console still explains); the kit's
  # units require the mount, so nothing ever writes state into the RAM overlay instead.
  grep -q 'LABEL=FKDATA' /etc/fstab || \
    echo "LABEL=FKDATA $DATA ext4 defaults,noatime,nofail,x-systemd.device-timeout=90s 0 2" >>/etc/fstab
  if command -v raspi-config >/dev/null; then
    raspi-config nonint enable_overlayfs   # Raspberry Pi OS's own overlay root
  else
    # (busybox and overlayroot: installed with the Debian packages above)
    # recurse=0: only / is overlaid; the data partition mounted on /var/lib/fieldkit stays writable.
    echo 'overlayroot="tmpfs:recurse=0"' >/etc/overlayroot.local.conf
  fi
  log "read-only root enabled; state lives on the partition labelled FKDATA"
fi

if $booted; then
  log "starting the kit"
  # Re-apply fieldkit.toml, then restart the broker and every service on the new code.
  systemctl restart fieldkit-boot.service mosquitto.service \
    && systemctl restart fieldkit-web fieldkit-status fieldkit-checkin fieldkit-pos fieldkit-power fieldkit-cues fieldkit-sync fieldkit-lead \
      fieldkit-group@status \
    && systemctl start fieldkit.target \
    || log "some units did not start: see systemctl status 'fieldkit-*' and journalctl -u 'fieldkit-*'"
fi
log "done: $("$PREFIX/bin/fieldkit" --version)"
