#!/usr/bin/env bash
# `make image-test`: a Debian bookworm disk image (the release Raspberry Pi OS is built on) with the
# kit installed by the shared installer, personalised like a lead would, booted under QEMU, and
# checked from the host: every unit active and /api/v1/health answers — then it reboots once and the
# second boot must keep the kit's secrets and state.
#
# The Debian part (mmdebstrap + provision.sh --packages-only + the test overlay's packages) is built
# once and cached outside the clone (cache.sh: keyed by root-recipe.sh, provision.sh,
# overlay-packages, the mirror); every run mounts it read-only under an overlay, installs the kit on
# top with provision.sh (then again: it must be idempotent), and makes the disk from that.
#
# The image has a read-only root (overlayroot) and a writable data partition FKDATA on
# /var/lib/fieldkit, like a kit provisioned with --readonly-root (FIELDKIT_IMAGE_TEST_READONLY=0: a
# plain writable root instead). Native amd64 instead of arm64; KVM only if kvm-probe.sh sees a guest
# really run, else QEMU's software emulation (TCG). FIELDKIT_IMAGE_TEST_ACCEL=tcg|kvm: no probe.
#
#   run.sh               build the root if it is not cached, then the test
#   run.sh --if-cached   the test if the root is cached; otherwise say so and exit 0 (`make test`);
#                        the device scenario after the boots only with FIELDKIT_IMAGE_TEST_SCENARIO=1 (either
#                        mode; see docs/appliance.md)
#   run.sh --cache-path  print the cache entry this checkout would use
#
# FIELDKIT_IMAGE_TEST_REBUILD=1 rebuilds the cached root (and collects the wheels again). On failure the work directory is kept
# (printed) so the logs can be read (FIELDKIT_IMAGE_TEST_KEEP=1: on success too);
# FIELDKIT_IMAGE_TEST_DIR=DIR works in DIR. FIELDKIT_IMAGE_TEST_ONLY="setup wifi.*" runs only the scenario
# steps matching those patterns (the others say not run, so such a run fails: a loop for building a step).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/image-build/test
MODE=${1:-run}
MIRROR=${FIELDKIT_MIRROR:-http://deb.debian.org/debian}
BOOT_TIMEOUT=${FIELDKIT_IMAGE_TEST_TIMEOUT:-1800}
READONLY=${FIELDKIT_IMAGE_TEST_READONLY:-1}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
# shellcheck source=image-build/test/root-recipe.sh
. "$HERE/root-recipe.sh"
# shellcheck source=image-build/test/cache.sh
. "$HERE/cache.sh"
export FIELDKIT_IMAGE_TEST_CACHE=$IMAGE_TEST_CACHE   # the same cache after sudo, whatever HOME becomes
ENTRY_NAME=$(cache_entry_name "$REPO" "$MIRROR" "$READONLY")
ENTRY=$IMAGE_TEST_CACHE/$ENTRY_NAME
LOCK=$IMAGE_TEST_CACHE/$ENTRY_NAME.lock
case "$MODE" in
  run) ;;
  --cache-path) echo "$ENTRY"; exit 0 ;;
  --if-cached)
    if [ ! -f "$ENTRY/built" ]; then
      echo "image test not run: no cached Debian root for this provision.sh and package list at $ENTRY."
      echo "  Building it downloads Debian and takes the image test from about 4 minutes to 6, twice that on a busy"
      echo "  machine: with the suite, more than CI's 15 minutes allow. Run \`make image-test\` once: after that"
      echo "  \`make test\` runs the image test too (IMAGE_TEST=0 skips it; IMAGE_TEST=1 builds the root when missing)."
      exit 0
    fi ;;
  *) echo "usage: run.sh [--if-cached|--cache-path]" >&2; exit 2 ;;
esac
# The device scenario after the second boot (FIELDKIT_IMAGE_TEST_SCENARIO=1).
# Opt-in for now: it has run once, here, and its scanner steps failed (fixed since, not yet re-run).
SCENARIO=${FIELDKIT_IMAGE_TEST_SCENARIO:-0}
T0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - T0 ))s"; }
WORK=""   # made once we run as root (below)
log() { echo "image-test: [$(elapsed)] $*"; }
MOUNTS=()   # unmounted in reverse on exit, whatever happened
QEMU=""
cleanup() {
  [ -z "$QEMU" ] || { kill "$QEMU" 2>/dev/null || true; wait "$QEMU" 2>/dev/null || true; }
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
  MOUNTS=()
}
trap cleanup EXIT
fail() {
  echo "image-test: FAIL: $*" >&2
  [ ! -s "$WORK/report.log" ] || { echo "image-test: last unit report:" >&2; tail -40 "$WORK/report.log" >&2; }
  cleanup
  echo "image-test: work dir kept: $WORK (console: $WORK/serial.log, unit reports: $WORK/report.log)" >&2
  exit 1
}

# --- tools ------------------------------------------------------------------------------------------
need=""
for pair in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 mkfs.ext4:e2fsprogs mcopy:mtools \
            sfdisk:fdisk curl:curl; do
  command -v "${pair%%:*}" >/dev/null || need="$need ${pair##*:}"
done
if [ -n "$need" ]; then
  log "installing:$need"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need
fi
[ "$(id -u)" = 0 ] || exec $SUDO -E bash "$0" "$@"   # building a root file system needs root
WORK=${FIELDKIT_IMAGE_TEST_DIR:-$(mktemp -d /tmp/fieldkit-image-test.XXXXXX)}
mkdir -p "$WORK"

# --- the wheel and its dependencies, built on the host (the guest installs them offline) -------------
PY=$REPO/.venv/bin/python
[ -x "$PY" ] || PY=python3
mkdir -p "$WORK/src" "$IMAGE_TEST_CACHE"
rm -rf "$WORK/dist" "$WORK/wheelhouse"
# The dependencies' wheels (and the build backend's) are cached too, keyed by the declared
# dependencies: then the kit's own wheel builds offline, and the index is asked nothing.
WHEELS_NAME=$(wheels_entry_name "$REPO" "$PY")
WHEELS=$IMAGE_TEST_CACHE/$WHEELS_NAME
exec 8>"$IMAGE_TEST_CACHE/$WHEELS_NAME.lock"
flock -x 8
if [ "${FIELDKIT_IMAGE_TEST_REBUILD:-0}" = 1 ] || [ ! -f "$WHEELS/built" ]; then
  log "collecting the dependencies' wheels into $WHEELS"
  rm -rf "$WHEELS" "$WHEELS.partial" && mkdir -p "$WHEELS.partial"
  mapfile -t backend < <(build_requires "$REPO" "$PY")
  { (cd "$REPO" && "$PY" -m pip wheel -q -w "$WHEELS.partial" . "${backend[@]}") >"$WORK/pip.log" 2>&1 \
    && rm -f "$WHEELS.partial"/fieldkit-*.whl; } || { cat "$WORK/pip.log"; rm -rf "$WHEELS.partial"; fail "collecting the dependencies"; }
  date -u +%FT%TZ >"$WHEELS.partial/built"
  mv "$WHEELS.partial" "$WHEELS"
fi
touch "$WHEELS"
cache_prune "$WHEELS_NAME"
log "building the wheel in $WORK (dependencies: $WHEELS)"
(cd "$REPO" && "$PY" -m pip wheel -q --no-deps --no-index --find-links "$WHEELS" -w "$WORK/dist" . >>"$WORK/pip.log" 2>&1) \
  || { cat "$WORK/pip.log"; fail "building the wheel (offline, from $WHEELS: FIELDKIT_IMAGE_TEST_REBUILD=1 collects them again)"; }
WHEEL=$(ls "$WORK"/dist/fieldkit-*.whl)
mkdir -p "$WORK/wheelhouse" && cp "$WHEELS"/*.whl "$WORK/wheelhouse/"
exec 8>&-
# The host's pip settings (local wheel dirs, proxies) mean nothing inside the guest.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CERT
# Only what the installer reads: units, files, docs.
rm -rf "$WORK/src"/*
cp -r "$REPO/systemd" "$REPO/docs" "$WORK/src/"
mkdir -p "$WORK/src/image-build" && cp -r "$REPO/image-build/files" "$REPO/image-build/provision.sh" "$WORK/src/image-build/"

# --- the cached Debian root (built when missing), mounted read-only under a per-run overlay ---------
RO_ARG=""
[ "$READONLY" != 1 ] || RO_ARG=--readonly-root
mkdir -p "$IMAGE_TEST_CACHE"
exec 9>"$LOCK"
if [ "${FIELDKIT_IMAGE_TEST_REBUILD:-0}" = 1 ] || [ ! -f "$ENTRY/built" ]; then
  flock -x 9   # one builder per entry; a second run waits here and then finds it built
  if [ "${FIELDKIT_IMAGE_TEST_REBUILD:-0}" = 1 ] || [ ! -f "$ENTRY/built" ]; then
    log "no cached root at $ENTRY: building it (mmdebstrap $ROOT_SUITE, provision.sh --packages-only $RO_ARG, test overlay)"
    rm -rf "$ENTRY" "$ENTRY.partial"
    mkdir -p "$ENTRY.partial"
    build_root "$ENTRY.partial/rootfs" "$MIRROR" "$REPO/image-build/provision.sh" "$HERE/overlay-packages" \
      "$RO_ARG" "$WORK/mmdebstrap.log" || { tail -40 "$WORK/mmdebstrap.log"; rm -rf "$ENTRY.partial"; fail "building the root file system"; }
    grep -E '^(provision|test overlay):' "$WORK/mmdebstrap.log" || true
    printf 'built %s in %s by %s\nmirror %s\nreadonly %s\n' "$(date -u +%FT%TZ)" "$(elapsed)" "$REPO" "$MIRROR" "$READONLY" \
      >"$ENTRY.partial/built"
    mv "$ENTRY.partial" "$ENTRY"
    log "cached root built: $ENTRY ($(du -sm "$ENTRY" | cut -f1) MB)"
  fi
fi
flock -s 9     # read it; a prune elsewhere leaves it alone meanwhile
touch "$ENTRY"  # last use, for the prune
cache_prune "$ENTRY_NAME"
log "cached root: $ENTRY ($(sed -n 1p "$ENTRY/built"))"

ROOTFS=$WORK/rootfs
rm -rf "$WORK/upper" "$WORK/overlay-work" "$ROOTFS"
mkdir -p "$WORK/upper" "$WORK/overlay-work" "$ROOTFS"
if mount -t overlay overlay -o "lowerdir=$ENTRY/rootfs,upperdir=$WORK/upper,workdir=$WORK/overlay-work" "$ROOTFS"; then
  MOUNTS+=("$ROOTFS")
else  # no overlayfs here: a plain copy (slower, same result)
  log "overlayfs not available: copying the cached root"
  cp -a "$ENTRY/rootfs/." "$ROOTFS/"
fi

# --- the kit, installed on top by the shared installer (twice: it must be idempotent) ---------------
DATA_LINE="LABEL=FKDATA /var/lib/fieldkit ext4 defaults,noatime,nofail,x-systemd.device-timeout=90s 0 2"
write_fstab() {  # as Raspberry Pi OS has it; provision.sh narrows the boot partition's permissions
  printf '/dev/vda2 / ext4 defaults,noatime 0 1\n/dev/vda1 /boot/firmware vfat defaults 0 2\n' >"$ROOTFS/etc/fstab"
  [ "$READONLY" != 1 ] || echo "$DATA_LINE" >>"$ROOTFS/etc/fstab"
}
provision() {  # NAME WHAT: provision.sh --no-apt (the cached root has the Debian packages) in the root
  local name=$1 what=$2 ok=true
  mkdir -p "$ROOTFS/tmp/fk" && cp -r "$WORK/src"/* "$WORK/wheelhouse" "$WHEEL" "$ROOTFS/tmp/fk/"
  mount --bind /dev "$ROOTFS/dev" && MOUNTS+=("$ROOTFS/dev")
  mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
  chroot "$ROOTFS" env FIELDKIT_PIP_ARGS='--no-index --find-links /tmp/fk/wheelhouse' \
    bash /tmp/fk/image-build/provision.sh --source /tmp/fk --no-apt $RO_ARG --wheel "/tmp/fk/$(basename "$WHEEL")" \
    >"$WORK/$name.log" 2>&1 || ok=false
  umount "$ROOTFS/proc" "$ROOTFS/dev"
  MOUNTS=("${MOUNTS[@]:0:${#MOUNTS[@]}-2}")
  $ok || { cat "$WORK/$name.log"; fail "$what"; }
}
write_fstab
log "installing the kit: provision.sh --no-apt $RO_ARG"
provision provision "provision.sh failed on the cached Debian root"
grep -E '^provision:' "$WORK/provision.log" || true
log "running provision.sh again (idempotent)"
provision provision-again "provision.sh failed on an installed system"
[ "$(grep -c '^fieldkit:' "$ROOTFS/etc/passwd")" = 1 ] || fail "provision.sh duplicated the fieldkit user"
[ "$(grep -c 'gid=' "$ROOTFS/etc/fstab")" = 1 ] || fail "the boot partition's mount options are missing or doubled"
if [ "$READONLY" = 1 ]; then
  [ "$(grep -c 'LABEL=FKDATA' "$ROOTFS/etc/fstab")" = 1 ] || fail "the data partition's fstab line is missing or doubled"
  grep -q 'overlayroot="tmpfs:recurse=0"' "$ROOTFS/etc/overlayroot.local.conf" || fail "overlayroot is not configured"
fi

# What only this test image needs: no hardware here, and a reporter that prints the units' states
# to the second serial port for the host to read, and reboots the kit once after the first good boot.
cat >"$ROOTFS/etc/fieldkit/kit.toml" <<'EOF'
# Emulated test image: no hardware, so every device uses its simulated backend.
[kit]
simulate = true
EOF
echo fieldkit-test >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/usr/local/bin/fieldkit-imagetest-report" <<'EOF'
#!/bin/sh
# Prints every Field Kit unit's state to the second serial port (the first one's getty would hang us up).
# With the default service.groups the light services run in one process (fieldkit-group@status); their own
# units and the kiosk (not a Pi, no screen) are skipped by ExecCondition, and are reported apart.
UNITS="mosquitto fieldkit-boot fieldkit-web fieldkit-group@status fieldkit-checkin fieldkit-pos fieldkit-slip"
SKIPPED="fieldkit-status fieldkit-power fieldkit-cues fieldkit-sync fieldkit-lead fieldkit-kiosk"
COUNTER=/var/lib/fieldkit/.imagetest-boots
boot=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 ))
echo "$boot" >"$COUNTER"
while true; do
  all=yes
  for u in $UNITS fieldkit-hotspot; do
    state=$(systemctl is-active $u.service)
    echo "FKTEST unit=$u active=$state condition=$(systemctl show -p ConditionResult --value $u.service)"
    [ "$u" = fieldkit-hotspot ] || [ "$state" = active ] || all=no
  done
  for u in fieldkit-update.path fieldkit-update.timer; do  # a bundle's arrival, the nightly look
    echo "FKTEST trigger=$u active=$(systemctl is-active $u)"
  done
  for u in $SKIPPED; do
    echo "FKTEST skipped=$u active=$(systemctl is-active $u.service) result=$(systemctl show -p Result --value $u.service)"
  done
  for u in $(systemctl list-units --no-legend --plain --state=failed,activating 'fieldkit-*' | awk '{print $1}'); do
    journalctl -b -u "$u" -n 8 --no-pager -o cat | sed "s/^/FKLOG $u: /"
  done
  slip=$(journalctl -b -u fieldkit-slip -o cat --no-pager | grep -c 'Setup slip queued')
  echo "FKTEST boot=$boot"
  echo "FKTEST pins=$(sha256sum /var/lib/fieldkit/secrets/pins.json 2>/dev/null | cut -c1-16)"
  echo "FKTEST root=$(findmnt -no FSTYPE /) data=$(findmnt -no SOURCE /var/lib/fieldkit)"
  echo "FKTEST issue=$(grep -c 'fieldkit-vmkit' /etc/issue.d/fieldkit.issue 2>/dev/null)"
  echo "FKTEST slip=$slip"
  echo "FKTEST user=$(id -nG fieldkit | tr ' ' ,)"
  # Item 8 of the hardening: the data stays private and the two writers that are not the kit still work.
  echo "FKTEST modes=$(stat -c %a /var/lib/fieldkit /var/lib/fieldkit/secrets /var/lib/fieldkit/kit.db 2>/dev/null | tr '\n' ,)"
  echo "FKTEST mosquitto_db=$(find /var/lib/fieldkit/mosquitto -name 'mosquitto.db' -size +0 2>/dev/null | wc -l)"
  echo "FKTEST mosquitto_errors=$(journalctl -b -u mosquitto -o cat --no-pager | grep -ci 'error')"
  echo "FKTEST escpos_cache=$(find /var/lib/fieldkit/cache -type f 2>/dev/null | wc -l)"
  # polkit, asked about the web service's own process (user fieldkit): allowed, allowed, allowed, refused.
  web=$(systemctl show -p MainPID --value fieldkit-web.service)
  if [ "${web:-0}" != 0 ]; then
    for action in org.freedesktop.login1.power-off org.freedesktop.timedate1.set-time \
                  org.freedesktop.NetworkManager.network-control org.freedesktop.systemd1.manage-units; do
      pkcheck --action-id "$action" --process "$web" >/dev/null 2>&1
      echo "FKTEST polkit $action=$?"
    done
  fi
  # Where the boot's time went (once systemd counts it finished), for whoever wants it faster.
  systemd-analyze time 2>/dev/null | head -1 | sed 's/^/FKTEST startup /'
  systemd-analyze blame 2>/dev/null | head -5 | sed 's/^ */FKTEST blame /'
  echo "FKTEST end"
  if [ "$boot" = 1 ] && [ "$all" = yes ] && [ "$slip" -ge 1 ]; then
    sleep 20  # let the host read this report and ask /api/v1/health before the reboot
    echo "FKTEST rebooting"
    systemctl reboot
    exit 0
  fi
  if [ "$boot" = 2 ] && [ "$all" = yes ] && [ "$slip" -ge 1 ]; then
    # This report is the second boot's: the device scenario takes over this port once the host,
    # having checked it, says go (it reconfigures the kit, so no more unit reports from here).
    exec /opt/fieldkit/bin/python /usr/local/lib/fieldkit-imagetest/guest-scenario.py
  fi
  # Report again in 10 s, or at once when the boot finishes (the report the host waits for).
  if [ "$(systemctl is-system-running)" = starting ]; then
    timeout 10 systemctl is-system-running --wait >/dev/null || true
  else
    sleep 10
  fi
done
EOF
chmod +x "$ROOTFS/usr/local/bin/fieldkit-imagetest-report"
cat >"$ROOTFS/etc/systemd/system/fieldkit-imagetest-report.service" <<'EOF'
[Unit]
Description=Field Kit image test: report unit states on the second serial port
# Not after fieldkit.target: report while the kit is still starting, so a stuck unit shows up.
After=basic.target local-fs.target
[Service]
ExecStart=/usr/local/bin/fieldkit-imagetest-report
StandardOutput=tty
TTYPath=/dev/ttyS1
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/fieldkit-imagetest-report.service \
  "$ROOTFS/etc/systemd/system/multi-user.target.wants/fieldkit-imagetest-report.service"
# The device scenario (guest-scenario.py) and what it needs that a Pi has and this Debian root has not.
install -D -m 0755 "$HERE/guest-scenario.py" "$ROOTFS/usr/local/lib/fieldkit-imagetest/guest-scenario.py"
install -m 0644 "$HERE/guest_common.py" "$HERE/guest_wifi.py" "$ROOTFS/usr/local/lib/fieldkit-imagetest/"
if [ -n "${FIELDKIT_IMAGE_TEST_ONLY:-}" ]; then  # a quicker loop: only these scenario steps (never a pass)
  printf '%s\n' "$FIELDKIT_IMAGE_TEST_ONLY" >"$ROOTFS/usr/local/lib/fieldkit-imagetest/only"
fi
if [ "$SCENARIO" = 1 ]; then
  # Its update steps: a release key and two signed bundles of this checkout (the next version, good; the
  # one after, whose services exit), built on the host as `fieldkit release bundle` builds them.
  log "building the scenario's release bundles"
  "$PY" "$HERE/update-bundles.py" "$REPO" "$WORK/bundles" >>"$WORK/pip.log" 2>&1 \
    || fail "could not build the release bundles (see $WORK/pip.log)"
  install -d -m 0755 "$ROOTFS/usr/local/lib/fieldkit-imagetest/bundles"
  install -m 0644 "$WORK/bundles/good.fkb" "$WORK/bundles/broken.fkb" "$WORK/bundles/release.pub" \
    "$WORK/bundles/versions" "$ROOTFS/usr/local/lib/fieldkit-imagetest/bundles/"
fi
cat >"$ROOTFS/etc/udev/rules.d/60-fieldkit-imagetest.rules" <<'EOF'
# Image test only. Raspberry Pi OS (raspberrypi-sys-mods, 99-com.rules) gives the I2C buses to group
# i2c; plain Debian leaves them root-only.
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
# The scenario's uinput scanner gets the by-id name a USB scanner gets from udev's usb_id.
SUBSYSTEM=="input", KERNEL=="event*", ATTRS{name}=="FieldKit Test Scanner", SYMLINK+="input/by-id/usb-FieldKit_Test_Scanner-event-kbd"
EOF
rm -rf "$ROOTFS/tmp/fk"
# Every run boots a kit fresh from the factory: first boot included.
find "$ROOTFS/var/lib/fieldkit" -mindepth 1 -delete

# --- disk image: FAT boot, ext4 root (+ ext4 data), like a Raspberry Pi OS card --------------------
KERNEL=$(ls "$ROOTFS"/boot/vmlinuz-* | head -1)
INITRD=$(ls "$ROOTFS"/boot/initrd.img-* | head -1)
cp "$KERNEL" "$WORK/vmlinuz" && cp "$INITRD" "$WORK/initrd.img"
DISK=$WORK/disk.img
ROOT_MB=$(( $(du -sm "$ROOTFS" | cut -f1) + 600 ))
BOOT_MB=64
DATA_MB=$([ "$READONLY" = 1 ] && echo 256 || echo 0)
rm -f "$DISK"
log "making the disk image (${BOOT_MB} MB boot + ${ROOT_MB} MB root + ${DATA_MB} MB data)"
truncate -s $(( (BOOT_MB + ROOT_MB + DATA_MB + 2) * 1024 * 1024 )) "$DISK"
{
  printf 'label: dos\nstart=2048, size=%d, type=c, bootable\n' $((BOOT_MB * 2048))
  printf 'start=%d, size=%d, type=83\n' $((2048 + BOOT_MB * 2048)) $((ROOT_MB * 2048))
  [ "$READONLY" != 1 ] || printf 'start=%d, type=83\n' $((2048 + (BOOT_MB + ROOT_MB) * 2048))
} | sfdisk -q "$DISK"
MTOOLS_SKIP_CHECK=1 mformat -i "$DISK@@$((2048 * 512))" -T $((BOOT_MB * 2048)) -h 64 -s 32 -v BOOTFS ::
# Each ext4 made in place at its partition's offset: no second copy of the root through dd.
mkfs.ext4 -q -L rootfs -E "offset=$(( (1 + BOOT_MB) * 1024 * 1024 )),nodiscard" -d "$ROOTFS" "$DISK" "${ROOT_MB}M"
[ "$READONLY" != 1 ] || mkfs.ext4 -q -L FKDATA -E "offset=$(( (1 + BOOT_MB + ROOT_MB) * 1024 * 1024 )),nodiscard" "$DISK" "$((DATA_MB - 1))M"
# The root is on the disk now: let go of the overlay and of the cached root (a prune may take it).
cleanup
exec 9>&-
log "disk image made"

# The lead's step: personalise the image on a laptop, no root needed.
log "personalising the image with personalise.sh"
"$REPO/image-build/personalise.sh" "$DISK" --kit-id vmkit --site testsite --hub \
  --hotspot-ssid fieldkit-vmkit --hotspot-password 'image test secret' --timezone Europe/Berlin

# --- boot it (and once more) -------------------------------------------------------------------------
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
GO_PORT=$(free_port)   # the device scenario waits for the host's GET /go on the guest's port 8099
# KVM only when a guest is seen to run under it: here /dev/kvm may open while guests never start.
ACCEL=${FIELDKIT_IMAGE_TEST_ACCEL:-auto}
case "$ACCEL" in
  kvm|tcg) why="FIELDKIT_IMAGE_TEST_ACCEL=$ACCEL" ;;
  auto)
    if why=$("$HERE/kvm-probe.sh" "$WORK/vmlinuz" "${FIELDKIT_IMAGE_TEST_KVM_PROBE_SECONDS:-8}"); then ACCEL=kvm; else ACCEL=tcg; fi ;;
  *) fail "FIELDKIT_IMAGE_TEST_ACCEL must be auto, kvm or tcg, not $ACCEL" ;;
esac
log "KVM probe: $why"
CPU_ARGS=()
[ "$ACCEL" != kvm ] || CPU_ARGS=(-cpu host)
log "booting under qemu-system-x86_64 (accel=$ACCEL), web on 127.0.0.1:$PORT"
: >"$WORK/serial.log"; : >"$WORK/report.log"
qemu-system-x86_64 -machine "q35,accel=$ACCEL" "${CPU_ARGS[@]}" -m 2048 -smp 2 -display none \
  -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
  -append "root=/dev/vda2 ro console=ttyS0 systemd.show_status=1 net.ifnames=0" \
  -drive "file=$DISK,format=raw,if=virtio,cache=unsafe" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:8080,hostfwd=tcp:127.0.0.1:$GO_PORT-:8099" -device virtio-net-pci,netdev=n0 \
  -serial "file:$WORK/serial.log" -serial "file:$WORK/report.log" -monitor none &
QEMU=$!

newest_report() {  # the newest complete report on the second serial port
  tac "$WORK/report.log" | tr -d '\r' \
    | awk '!done && /^FKTEST end/ { on = 1 } on { print } on && /^FKTEST unit=mosquitto / { on = 0; done = 1 }' | tac
}
all_active() { ! grep 'FKTEST unit=' <<<"$1" | grep -v 'unit=fieldkit-hotspot' | grep -qv 'active=active '; }
started=$(date +%s)
first_report="" first_health="" report="" health=""
while :; do
  kill -0 "$QEMU" 2>/dev/null || fail "QEMU exited"
  now=$(date +%s)
  [ $((now - started)) -lt "$BOOT_TIMEOUT" ] || fail "no healthy kit (boot 1 and 2) after ${BOOT_TIMEOUT}s"
  if grep -q '^FKTEST end' "$WORK/report.log"; then
    report=$(newest_report)
    if all_active "$report"; then
      if h=$(curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/v1/health" 2>/dev/null); then
        if grep -q '^FKTEST boot=1$' <<<"$report" && [ -z "$first_report" ]; then
          first_report=$report first_health=$h
          log "boot 1: every unit active after $((now - started))s; GET /api/v1/health: $h"
          sed -n 's/^FKTEST \(startup\|blame\) /image-test:   guest: /p' <<<"$report"
        elif grep -q '^FKTEST boot=2$' <<<"$report"; then
          health=$h
          log "boot 2: every unit active after $((now - started))s; GET /api/v1/health: $h"
          sed -n 's/^FKTEST \(startup\|blame\) /image-test:   guest: /p' <<<"$report"
          break
        fi
      fi
    fi
  fi
  sleep 2
done
[ -n "$first_report" ] || fail "the first boot was never seen healthy"
echo "$first_report"
for r in "$first_report" "$report"; do
  grep -q 'unit=fieldkit-hotspot active=inactive condition=no' <<<"$r" \
    || fail "the hotspot unit should be skipped on a machine without Wi-Fi"
  for u in fieldkit-status fieldkit-power fieldkit-cues fieldkit-sync fieldkit-lead fieldkit-kiosk; do
    grep -q "FKTEST skipped=$u active=inactive" <<<"$r" \
      || fail "$u should step aside (its service runs in fieldkit-group@status, or no kiosk here): $(grep "skipped=$u " <<<"$r")"
  done
  for u in fieldkit-update.path fieldkit-update.timer; do
    grep -q "FKTEST trigger=$u active=active" <<<"$r" || fail "$u is not active: $(grep "trigger=$u " <<<"$r")"
  done
  grep -q 'FKTEST issue=[1-9]' <<<"$r" || fail "the setup slip is not on the console (/etc/issue.d)"
  grep -q 'FKTEST slip=[1-9]' <<<"$r" || fail "the pos service did not queue the setup slip (every boot)"
done
grep -q '"ok":true' <<<"$first_health" && grep -q '"ok":true' <<<"$health" || fail "/api/v1/health is not ok"
for svc in status power cues sync lead; do  # the group's members each report their own health
  grep -q "\"$svc\":\"ok\"" <<<"$health" || fail "the $svc service (in fieldkit-group@status) is not ok: $health"
done
pins1=$(sed -n 's/^FKTEST pins=//p' <<<"$first_report")
pins2=$(sed -n 's/^FKTEST pins=//p' <<<"$report")
[ -n "$pins1" ] && [ "$pins1" = "$pins2" ] || fail "the second boot changed the staff PINs ($pins1 -> $pins2)"
if [ "$READONLY" = 1 ]; then
  grep -q '^FKTEST root=overlay data=/dev/vda3$' <<<"$report" \
    || fail "expected a read-only overlay root and the data partition on /var/lib/fieldkit"
fi
for action in org.freedesktop.login1.power-off org.freedesktop.timedate1.set-time \
              org.freedesktop.NetworkManager.network-control; do
  grep -q "FKTEST polkit $action=0" <<<"$report" || fail "polkit does not let user fieldkit do $action"
done
grep -q "FKTEST polkit org.freedesktop.systemd1.manage-units=0" <<<"$report" \
  && fail "polkit lets user fieldkit manage units: the rule is too wide"
grep -q '^FKTEST modes=751,700,640,$' <<<"$report" \
  || fail "data dir, secrets and kit.db should be 751, 700, 640: $(grep '^FKTEST modes=' <<<"$report")"
# Mosquitto saved its retained messages on the first boot's shutdown (as its own user, under the
# kit's private data dir) and logged no error; python-escpos wrote its capability cache there.
grep -q '^FKTEST mosquitto_db=1$' <<<"$report" || fail "Mosquitto kept no persistence file on the data partition"
grep -q '^FKTEST mosquitto_errors=0$' <<<"$report" || fail "Mosquitto logged errors: $(grep '^FKTEST mosquitto_errors=' <<<"$report")"
grep -q '^FKTEST escpos_cache=[1-9]' <<<"$report" || fail "python-escpos wrote no capability cache under the data dir"
for g in gpio i2c spi dialout video input lp audio; do
  grep -q "FKTEST user=.*\b$g\b" <<<"$report" || fail "user fieldkit is not in group $g"
done
log "PASS: two boots; every unit active, /api/v1/health ok, hotspot skipped without Wi-Fi, setup slip queued by"
log "      pos and on the console each boot, PINs kept across the reboot, polkit rule as intended$([ "$READONLY" = 1 ] && echo ", read-only root with the data partition"),"
log "      data 751/secrets 700/kit.db 640, Mosquitto's persistence and python-escpos's cache on the data partition"

# --- the device scenario (guest-scenario.py): the kit's real drivers on the kernel's device simulators ---
# Every step the guest runs is one FKSCN line on the second serial port; scenario.sh decides.
if [ "$SCENARIO" = 1 ]; then
  # shellcheck source=image-build/test/scenario.sh
  . "$HERE/scenario.sh"
  log "device scenario: telling the guest to go"
  go_started=$(date +%s)
  until curl -fsS --max-time 5 "http://127.0.0.1:$GO_PORT/go" >/dev/null 2>&1; do
    kill -0 "$QEMU" 2>/dev/null || fail "QEMU exited before the device scenario started"
    [ $(($(date +%s) - go_started)) -lt 120 ] || fail "the guest's device scenario never answered on port 8099"
    sleep 2
  done
  SCENARIO_TIMEOUT=${FIELDKIT_IMAGE_TEST_SCENARIO_TIMEOUT:-2400}
  until [ -n "$(scenario_lines "$WORK/report.log")" ]; do
    kill -0 "$QEMU" 2>/dev/null || fail "QEMU exited during the device scenario: $(grep -a '^FKSCN' "$WORK/report.log" | tail -3)"
    [ $(($(date +%s) - go_started)) -lt "$SCENARIO_TIMEOUT" ] \
      || fail "the device scenario did not finish in ${SCENARIO_TIMEOUT}s: $(grep -a '^FKSCN' "$WORK/report.log" | tail -3)"
    sleep 2
  done
  scenario=$(scenario_lines "$WORK/report.log")
  log "device scenario ($(sed -n 's/^FKSCN end seconds=//p' <<<"$scenario")s in the guest):"
  scenario_table "$scenario" | sed 's/^/image-test:   /'
  grep -a '^FKSCNLOG' "$WORK/report.log" | tr -d '\r' | sed 's/^/image-test:   /' || true
  bad=$(scenario_verdict "$scenario") || fail "device scenario steps that did not pass: $bad"
  log "PASS: device scenario: every one of its $(wc -w <<<"$SCENARIO_STEPS") steps passed; $(grep -c '^FKSCN step=[^ ]* result=notrun ' <<<"$scenario") not run (listed above)"
else
  log "device scenario not run: it is opt-in until it has passed end to end (FIELDKIT_IMAGE_TEST_SCENARIO=1 runs it)"
fi
log "done in $(elapsed) (accel=$ACCEL)"
if [ "${FIELDKIT_IMAGE_TEST_KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
