#!/usr/bin/env bash
# Install or update Field Kit on a running Raspberry Pi OS (Bookworm or later), from this checkout:
#
#   sudo image-build/install.sh [--wheel dist/fieldkit-*.whl] [--readonly-root]
#
# Builds the wheel when none is given, runs the shared installer (provision.sh) and starts the kit.
# Safe to run again after `git pull`: it updates the kit and restarts its services.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "install.sh: run with sudo" >&2; exit 1; }
WHEEL=""
PASS=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --wheel) WHEEL=$2; shift 2 ;;
    --readonly-root) PASS+=("$1"); shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -z "$WHEEL" ]; then
  command -v pip3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-pip python3-venv; }
  BUILD=$(mktemp -d)
  trap 'rm -rf "$BUILD"' EXIT
  echo "install.sh: building the wheel"
  python3 -m pip wheel -q --no-deps -w "$BUILD" "$REPO"
  WHEEL=$(ls "$BUILD"/fieldkit-*.whl)
fi

bash "$REPO/image-build/provision.sh" --source "$REPO" --wheel "$WHEEL" "${PASS[@]}"

if [ ! -f /boot/firmware/fieldkit.toml ]; then
  cat <<'MSG'

install.sh: there is no /boot/firmware/fieldkit.toml yet, so the kit runs with defaults (kit id "kit1",
a hotspot password made at first boot and printed on the setup slip). Write the kit's own settings:

  sudo nano /boot/firmware/fieldkit.toml
      [kit]
      id = "door1"
      site = "market"
      [network]
      hotspot_ssid = "door1-kit"
      hotspot_password = "8 to 63 characters"

then: sudo systemctl restart fieldkit-boot.service fieldkit.target
MSG
fi
