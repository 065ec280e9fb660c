# The image test's cached layer: a Debian root with every Debian package the kit needs (provision.sh
# --packages-only) and the test overlay's packages (overlay-packages), but not the kit itself.
# Sourced by run.sh. This file, provision.sh, overlay-packages, the mirror and the read-only switch
# make the cache key (cache.sh): keep here only what shapes that layer, so a change to the kit or to
# the test's checks does not rebuild Debian.
ROOT_SUITE=bookworm
ROOT_ARCH=amd64
ROOT_INCLUDE=systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,iproute2,procps,curl,python3,python3-venv,python3-pip,mosquitto,network-manager,polkitd,dosfstools
# The product's Debian Python packages, less OpenCV and mpv (no camera, no sound in the VM: smaller root).
ROOT_DEBIAN_PYTHON='python3-numpy python3-lgpio python3-evdev python3-usb'
ROOT_EXTRA_APT=''

# build_root DEST MIRROR PROVISION_SH OVERLAY_LIST RO_ARG LOG
build_root() {
  local dest=$1 mirror=$2 provision=$3 overlay=$4 ro_arg=$5 log=$6 extra hooks
  extra=$(grep -v '^[[:space:]]*#' "$overlay" | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
  hooks=$(mktemp -d)
  cp "$provision" "$hooks/provision.sh"
  # Runs in the new root: the product's packages, then the overlay's, and a list of what the overlay
  # added (with what it pulled in), for anyone who wonders whether the kit relies on one of them.
  cat >"$hooks/layer.sh" <<LAYER
set -e
FIELDKIT_DEBIAN_PYTHON='$ROOT_DEBIAN_PYTHON' FIELDKIT_EXTRA_APT='$ROOT_EXTRA_APT' FIELDKIT_KIOSK_APT='' bash /tmp/fk/provision.sh --packages-only $ro_arg
dpkg-query -W -f='\${Package}\n' | sort >/tmp/fk/product-packages
if [ -n "$extra" ]; then
  echo "test overlay: installing $extra"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $extra
fi
dpkg-query -W -f='\${Package}\n' | sort | comm -13 /tmp/fk/product-packages - >/etc/fieldkit-test-overlay-packages
LAYER
  local rc=0
  mmdebstrap --variant=apt --architectures="$ROOT_ARCH" --include="$ROOT_INCLUDE" \
    --customize-hook='mkdir -p "$1/tmp/fk"' \
    --customize-hook="copy-in $hooks/provision.sh $hooks/layer.sh /tmp/fk/" \
    --customize-hook='chroot "$1" sh /tmp/fk/layer.sh' \
    --customize-hook='rm -rf "$1/tmp/fk"' \
    "$ROOT_SUITE" "$dest" "$mirror" >"$log" 2>&1 || rc=$?
  rm -rf "$hooks"
  return $rc
}
