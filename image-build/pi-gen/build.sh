#!/usr/bin/env bash
# Build the flashable Field Kit image with pi-gen (Raspberry Pi OS Lite + the kit), 64-bit.
#
#   sudo image-build/pi-gen/build.sh [--pi-gen DIR] [--docker] [--wifi-country GB]
#
# Needs root, about 20 GB free, Internet, and on x86 qemu-user-static with binfmt_misc
# (Debian: sudo apt install coreutils quilt parted qemu-user-static debootstrap zerofree zip dosfstools
#  libarchive-tools libcap2-bin grep rsync xz-utils file git curl bc gpg pigz xxd arch-test).
# The image lands in DIR/deploy/ as image_<date>-fieldkit-fieldkit.img.xz.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PI_GEN=""
DOCKER=false
WIFI_COUNTRY=GB
while [ "$#" -gt 0 ]; do
  case "$1" in
    --pi-gen) PI_GEN=$2; shift 2 ;;
    --docker) DOCKER=true; shift ;;
    --wifi-country) WIFI_COUNTRY=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$PI_GEN" ]; then
  PI_GEN=$REPO/build/pi-gen
  [ -d "$PI_GEN" ] || git clone --depth 1 --branch arm64 https://github.com/RPi-Distro/pi-gen.git "$PI_GEN"
fi

# The kit's wheel and what the installer reads, as the stage's files.
STAGE=$PI_GEN/stage-fieldkit
rm -rf "$STAGE"
cp -r "$REPO/image-build/pi-gen/stage-fieldkit" "$STAGE"
SRC=$STAGE/00-fieldkit/files/src
mkdir -p "$SRC/image-build" "$SRC/dist"
cp -r "$REPO/systemd" "$REPO/docs" "$SRC/"
cp -r "$REPO/image-build/files" "$REPO/image-build/provision.sh" "$SRC/image-build/"
python3 -m pip wheel -q --no-deps -w "$SRC/dist" "$REPO"

# Only the Field Kit image is exported, not the plain Lite one.
touch "$PI_GEN/stage2/SKIP_IMAGES"
# pi-gen insists on a first user with a password; it is random, never shown, and locked by the stage.
cat >"$PI_GEN/config" <<CONFIG
IMG_NAME=fieldkit
RELEASE=bookworm
TARGET_HOSTNAME=fieldkit
FIRST_USER_NAME=kitadmin
FIRST_USER_PASS=$(head -c 24 /dev/urandom | base64)
DISABLE_FIRST_BOOT_USER_RENAME=1
ENABLE_SSH=0
WPA_COUNTRY=$WIFI_COUNTRY
LOCALE_DEFAULT=en_GB.UTF-8
KEYBOARD_KEYMAP=gb
TIMEZONE_DEFAULT=UTC
DEPLOY_COMPRESSION=xz
STAGE_LIST="stage0 stage1 stage2 stage-fieldkit"
CONFIG

cd "$PI_GEN"
if $DOCKER; then ./build-docker.sh; else ./build.sh; fi
ls -l "$PI_GEN"/deploy/
