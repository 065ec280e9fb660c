#!/usr/bin/env bash
# `make image-test`: build a Debian bookworm disk image (the release Raspberry Pi OS is built on)
# with the shared installer, personalise it like a lead would, boot it under QEMU and check from the
# host that every unit is active and /api/v1/health answers.
#
# Native amd64 instead of arm64, and QEMU's software emulation (TCG) unless FIELDKIT_IMAGE_TEST_KVM=1.
# Slow (about 10-20 minutes, most of it downloading and booting): not part of `make test`.
# Keeps its work directory on failure (printed) so the serial log can be read.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${FIELDKIT_IMAGE_TEST_DIR:-$(mktemp -d /tmp/fieldkit-image-test.XXXXXX)}
SUITE=bookworm
MIRROR=${FIELDKIT_MIRROR:-http://deb.debian.org/debian}
BOOT_TIMEOUT=${FIELDKIT_IMAGE_TEST_TIMEOUT:-1200}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
log() { echo "image-test: $*"; }
fail() {
  echo "image-test: FAIL: $*" >&2
  [ ! -s "$WORK/report.log" ] || { echo "image-test: last unit report:" >&2; tail -40 "$WORK/report.log" >&2; }
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

# --- the wheel and its dependencies, built on the host (the guest installs them offline) -------------
PY=$REPO/.venv/bin/python
[ -x "$PY" ] || PY=python3
log "building the wheel in $WORK"
mkdir -p "$WORK/src"
rm -rf "$WORK/dist" "$WORK/wheelhouse"
(cd "$REPO" && "$PY" -m pip wheel -q --no-deps -w "$WORK/dist" .)
WHEEL=$(ls "$WORK"/dist/fieldkit-*.whl)
"$PY" -m pip wheel -q -w "$WORK/wheelhouse" "$WHEEL"
# The host's pip settings (local wheel dirs, proxies) mean nothing inside the guest.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CERT
# Only what the installer reads: units, files, docs.
rm -rf "$WORK/src"/*
cp -r "$REPO/systemd" "$REPO/docs" "$WORK/src/"
mkdir -p "$WORK/src/image-build" && cp -r "$REPO/image-build/files" "$REPO/image-build/provision.sh" "$WORK/src/image-build/"

# --- root file system: Debian + the shared installer ----------------------------------------------
ROOTFS=$WORK/rootfs
write_fstab() {  # as Raspberry Pi OS has it; provision.sh narrows the boot partition's permissions
  printf '/dev/vda2 / ext4 defaults,noatime 0 1\n/dev/vda1 /boot/firmware vfat defaults 0 2\n' >"$ROOTFS/etc/fstab"
}
if [ "${FIELDKIT_IMAGE_TEST_REUSE:-0}" = 1 ] && [ -x "$ROOTFS/opt/fieldkit/bin/fieldkit" ]; then
  log "reusing the root file system in $ROOTFS (FIELDKIT_IMAGE_TEST_REUSE=1): installing the new wheel only"
  write_fstab
  mkdir -p "$ROOTFS/tmp/fk" && cp -r "$WORK/src"/* "$WORK/wheelhouse" "$WHEEL" "$ROOTFS/tmp/fk/"
  mount --bind /dev "$ROOTFS/dev" && mount -t proc proc "$ROOTFS/proc"
  chroot "$ROOTFS" env FIELDKIT_PIP_ARGS='--no-index --find-links /tmp/fk/wheelhouse' \
    bash /tmp/fk/image-build/provision.sh --source /tmp/fk --no-apt --wheel "/tmp/fk/$(basename "$WHEEL")" \
    >"$WORK/provision-again.log" 2>&1 || { umount "$ROOTFS/proc" "$ROOTFS/dev"; fail "provision.sh failed"; }
  umount "$ROOTFS/proc" "$ROOTFS/dev"
else
rm -rf "$ROOTFS"
log "building a $SUITE root file system (mmdebstrap) and running provision.sh in it"
mmdebstrap --variant=apt --architectures=amd64 \
  --include=systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,iproute2,procps,curl,python3,python3-venv,python3-pip,mosquitto,network-manager,polkitd,dosfstools \
  --customize-hook='mkdir -p "$1/tmp/fk"' \
  --customize-hook="copy-in $WORK/src/systemd $WORK/src/docs $WORK/src/image-build $WORK/wheelhouse $WHEEL /tmp/fk/" \
  --customize-hook="chroot \"\$1\" env FIELDKIT_DEBIAN_PYTHON='python3-numpy python3-lgpio python3-evdev' FIELDKIT_EXTRA_APT='' FIELDKIT_PIP_ARGS='--no-index --find-links /tmp/fk/wheelhouse' bash /tmp/fk/image-build/provision.sh --source /tmp/fk --wheel /tmp/fk/$(basename "$WHEEL")" \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 || { tail -40 "$WORK/mmdebstrap.log"; fail "building the root file system"; }
grep -E '^provision:' "$WORK/mmdebstrap.log" || true

# Run the installer a second time: it must be idempotent.
log "running provision.sh again (idempotent)"
write_fstab
mount --bind /dev "$ROOTFS/dev" && mount -t proc proc "$ROOTFS/proc"
mkdir -p "$ROOTFS/tmp/fk" && cp -r "$WORK/src"/* "$WORK/wheelhouse" "$WHEEL" "$ROOTFS/tmp/fk/"
second_ok=true
chroot "$ROOTFS" env FIELDKIT_PIP_ARGS='--no-index --find-links /tmp/fk/wheelhouse' \
  bash /tmp/fk/image-build/provision.sh --source /tmp/fk --no-apt --wheel "/tmp/fk/$(basename "$WHEEL")" \
  >"$WORK/provision-again.log" 2>&1 || second_ok=false
umount "$ROOTFS/proc" "$ROOTFS/dev"
$second_ok || { cat "$WORK/provision-again.log"; fail "the second provision.sh run failed"; }
[ "$(grep -c '^fieldkit:' "$ROOTFS/etc/passwd")" = 1 ] || fail "the second run duplicated the fieldkit user"
fi

# What only this test image needs: no hardware here, a root shell on the serial console for
# debugging, a reporter that prints the units' states to the serial port for the host to read.
cat >"$ROOTFS/etc/fieldkit/kit.toml" <<'EOF'
# Emulated test image: no hardware, so every device uses its simulated backend.
[kit]
simulate = true
EOF
echo fieldkit-test >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/usr/local/bin/fieldkit-imagetest-report" <<'EOF'
#!/bin/sh
# Prints every Field Kit unit's state to the second serial port (the first one's getty would hang us up).
while true; do
  for u in mosquitto fieldkit-boot fieldkit-web fieldkit-status fieldkit-checkin fieldkit-pos fieldkit-power \
           fieldkit-cues fieldkit-sync fieldkit-slip fieldkit-hotspot; do
    echo "FKTEST unit=$u active=$(systemctl is-active $u.service) condition=$(systemctl show -p ConditionResult --value $u.service)"
  done
  for u in $(systemctl list-units --no-legend --plain --state=failed,activating 'fieldkit-*' | awk '{print $1}'); do
    journalctl -b -u "$u" -n 8 --no-pager -o cat | sed "s/^/FKLOG $u: /"
  done
  echo "FKTEST issue=$(grep -c 'fieldkit-vmkit' /etc/issue.d/fieldkit.issue 2>/dev/null)"
  echo "FKTEST slip=$(journalctl -b -u fieldkit-slip -o cat --no-pager | grep -c 'Setup slip queued')"
  echo "FKTEST user=$(id -nG fieldkit | tr ' ' ,)"
  echo "FKTEST end"
  sleep 10
done
EOF
chmod +x "$ROOTFS/usr/local/bin/fieldkit-imagetest-report"
cat >"$ROOTFS/etc/systemd/system/fieldkit-imagetest-report.service" <<'EOF'
[Unit]
Description=Field Kit image test: report unit states on the second serial port
# Not after fieldkit.target: report while the kit is still starting, so a stuck unit shows up.
After=basic.target
[Service]
ExecStart=/usr/local/bin/fieldkit-imagetest-report
StandardOutput=tty
TTYPath=/dev/ttyS1
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/fieldkit-imagetest-report.service \
  "$ROOTFS/etc/systemd/system/multi-user.target.wants/fieldkit-imagetest-report.service"
rm -rf "$ROOTFS/tmp/fk"
[ "$(grep -c 'gid=' "$ROOTFS/etc/fstab")" = 1 ] || fail "the boot partition's mount options are missing or doubled"
# Every run boots a kit fresh from the factory: first boot included.
find "$ROOTFS/var/lib/fieldkit" -mindepth 1 -delete

# --- disk image: FAT boot partition + ext4 root, like a Raspberry Pi OS card ----------------------
KERNEL=$(ls "$ROOTFS"/boot/vmlinuz-* | head -1)
INITRD=$(ls "$ROOTFS"/boot/initrd.img-* | head -1)
cp "$KERNEL" "$WORK/vmlinuz" && cp "$INITRD" "$WORK/initrd.img"
DISK=$WORK/disk.img
ROOT_MB=$(( $(du -sm "$ROOTFS" | cut -f1) + 600 ))
BOOT_MB=64
rm -f "$DISK" "$WORK/root.ext4"
log "making the disk image (${BOOT_MB} MB boot + ${ROOT_MB} MB root)"
mkfs.ext4 -q -L rootfs -d "$ROOTFS" "$WORK/root.ext4" "${ROOT_MB}M"
truncate -s $(( (BOOT_MB + ROOT_MB + 2) * 1024 * 1024 )) "$DISK"
printf 'label: dos\nstart=2048, size=%d, type=c, bootable\nstart=%d, type=83\n' \
  $((BOOT_MB * 2048)) $((2048 + BOOT_MB * 2048)) | sfdisk -q "$DISK"
MTOOLS_SKIP_CHECK=1 mformat -i "$DISK@@$((2048 * 512))" -T $((BOOT_MB * 2048)) -h 64 -s 32 -v BOOTFS ::
dd if="$WORK/root.ext4" of="$DISK" bs=1M seek=$((1 + BOOT_MB)) conv=notrunc status=none
rm -f "$WORK/root.ext4"

# The lead's step: personalise the image on a laptop, no root needed.
log "personalising the image with personalise.sh"
"$REPO/image-build/personalise.sh" "$DISK" --kit-id vmkit --site testsite --hub \
  --hotspot-ssid fieldkit-vmkit --hotspot-password 'image test secret' --timezone Europe/Berlin

# --- boot it ----------------------------------------------------------------------------------------
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ACCEL=tcg
if [ "${FIELDKIT_IMAGE_TEST_KVM:-0}" = 1 ] && [ -w /dev/kvm ]; then ACCEL=kvm; fi
log "booting under qemu-system-x86_64 (accel=$ACCEL), web on 127.0.0.1:$PORT"
: >"$WORK/serial.log"; : >"$WORK/report.log"
qemu-system-x86_64 -machine q35,accel=$ACCEL -m 2048 -smp 2 -display none -no-reboot \
  -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
  -append "root=/dev/vda2 rw console=ttyS0 systemd.show_status=1 net.ifnames=0" \
  -drive "file=$DISK,format=raw,if=virtio" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:8080" -device virtio-net-pci,netdev=n0 \
  -serial "file:$WORK/serial.log" -serial "file:$WORK/report.log" -monitor none &
QEMU=$!
cleanup() { kill "$QEMU" 2>/dev/null || true; wait "$QEMU" 2>/dev/null || true; }
trap cleanup EXIT

started=$(date +%s)
health=""
while :; do
  kill -0 "$QEMU" 2>/dev/null || fail "QEMU exited"
  now=$(date +%s)
  [ $((now - started)) -lt "$BOOT_TIMEOUT" ] || fail "no healthy kit after ${BOOT_TIMEOUT}s"
  if [ -z "$health" ] && health=$(curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/v1/health" 2>/dev/null); then
    log "GET /api/v1/health answered after $((now - started))s: $health"
  fi
  if [ -n "$health" ] && grep -q '^FKTEST end' "$WORK/report.log"; then
    # The newest complete report.
    report=$(tac "$WORK/report.log" | tr -d '\r' \
      | awk '/^FKTEST end/ { on = 1 } on { print } on && /^FKTEST unit=mosquitto / { exit }' | tac)
    if ! grep 'FKTEST unit=' <<<"$report" | grep -v 'unit=fieldkit-hotspot' | grep -qv 'active=active '; then
      break
    fi
    [ $((now - started)) -lt $((BOOT_TIMEOUT - 30)) ] || { echo "$report"; fail "some units are not active"; }
  fi
  sleep 5
done
echo "$report"
grep -q 'unit=fieldkit-hotspot active=inactive condition=no' <<<"$report" \
  || fail "the hotspot unit should be skipped on a machine without Wi-Fi"
grep -q 'FKTEST issue=[1-9]' <<<"$report" || fail "the setup slip is not on the console (/etc/issue.d)"
grep -q 'FKTEST slip=[1-9]' <<<"$report" || fail "the pos service did not queue the setup slip"
for g in gpio i2c spi dialout video input lp audio; do
  grep -q "FKTEST user=.*\b$g\b" <<<"$report" || fail "user fieldkit is not in group $g"
done
log "PASS: every unit active, hotspot skipped without Wi-Fi, setup slip queued by pos and on the console, /api/v1/health answers"
rm -rf "$WORK"
