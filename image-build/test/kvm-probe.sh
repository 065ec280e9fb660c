#!/usr/bin/env bash
# Does a guest really run under KVM here? `/dev/kvm` opening (even creating a VM) is not enough: on
# some hosts a KVM guest never prints a line. Boot KERNEL (no initrd, no disk: it gets as far as its
# first console lines, then panics for want of a root) and wait up to SECONDS for "Linux version" on
# the serial console.
#
#   kvm-probe.sh KERNEL [SECONDS] [ACCEL]     (ACCEL=tcg checks the probe itself: must print "yes")
#
# Prints one line: "yes <why>" (exit 0) or "no <why>" (exit 1).
set -uo pipefail
KERNEL=${1:?usage: kvm-probe.sh KERNEL [SECONDS] [ACCEL]}
SECONDS_MAX=${2:-8}
ACCEL=${3:-kvm}
if [ "$ACCEL" = kvm ]; then
  [ -e /dev/kvm ] || { echo "no: there is no /dev/kvm"; exit 1; }
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "no: /dev/kvm is not readable and writable for $(id -un)"; exit 1; }
fi
LOG=$(mktemp)
CPU=host
[ "$ACCEL" = kvm ] || CPU=max
qemu-system-x86_64 -machine "q35,accel=$ACCEL" -cpu "$CPU" -m 256 -smp 1 -nodefaults -display none \
  -no-reboot -monitor none -kernel "$KERNEL" -append "console=ttyS0 earlyprintk=ttyS0 panic=-1" \
  -serial "file:$LOG" >"$LOG.qemu" 2>&1 &
QEMU=$!
now_us() { echo "${EPOCHREALTIME/./}"; }
start=$(now_us)
verdict="no: /dev/kvm opens but a guest printed nothing on its console in ${SECONDS_MAX}s"
[ "$ACCEL" = kvm ] || verdict="no: the guest printed nothing on its console in ${SECONDS_MAX}s under $ACCEL"
while :; do
  if grep -q 'Linux version' "$LOG" 2>/dev/null; then
    ms=$(( ($(now_us) - start) / 1000 ))
    verdict="yes: the guest kernel printed its first console line after $((ms / 1000)).$(printf %03d $((ms % 1000)))s under $ACCEL"
    break
  fi
  if ! kill -0 "$QEMU" 2>/dev/null; then
    verdict="no: qemu-system-x86_64 -accel $ACCEL exited at once: $(tr '\n' ' ' <"$LOG.qemu" | cut -c1-200)"
    break
  fi
  [ $(( $(now_us) - start )) -lt $(( SECONDS_MAX * 1000000 )) ] || break
  sleep 0.2
done
kill "$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null
rm -f "$LOG" "$LOG.qemu"
echo "$verdict"
[[ "$verdict" == yes* ]]
