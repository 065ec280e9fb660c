#!/usr/bin/env bash
# Write a kit's own settings (fieldkit.toml) into the boot partition of a Field Kit image.
#
# Runs on a laptop without root: sfdisk (package fdisk) finds the FAT boot partition inside the
# image file, mtools writes the file into it. Every option is checked before the image is touched,
# so a refused call leaves the image exactly as it was. The kit re-applies the file at every boot.
#
# Example:
#   image-build/personalise.sh fieldkit.img --kit-id door1 --site market \
#     --hotspot-ssid door1-kit --hotspot-password 'long enough secret' \
#     --uplink-ssid HomeWiFi --uplink-password 'home secret' --timezone Europe/Berlin
set -euo pipefail

usage() {
  cat <<'EOF'
usage: personalise.sh IMAGE --kit-id ID --site SITE --hotspot-ssid NAME --hotspot-password PASSWORD
                      [--hub | --hub-address ADDRESS] [--site-password PASSWORD]
                      [--uplink-ssid NAME --uplink-password PASSWORD]
                      [--hq-url URL --hq-token TOKEN] [--timezone ZONE] [--event NAME] [--currency CODE]
                      [--release-key release.pub ...]

Writes fieldkit.toml into the FAT boot partition of IMAGE (no root needed; needs sfdisk and mtools).
  --kit-id            this kit's id: letters, digits, - and _ (up to 32)
  --site              the site (event venue) the kit belongs to: same rules as the kit id
  --hub               this kit is the site's hub (other kits of the site connect to it)
  --hub-address       address of the site's hub kit, for a kit that is not the hub
  --site-password     password the kits of one site share on the hub's broker (8-63 characters)
  --hotspot-ssid      name of the kit's own Wi-Fi (1-32 characters)
  --hotspot-password  password of that Wi-Fi (8-63 characters)
  --uplink-ssid       a known Wi-Fi the kit joins to reach HQ ("Go online" on the dashboard)
  --uplink-password   its password (8-63 characters; omit for an open network)
  --hq-url            HQ address, e.g. https://hq.example.org
  --hq-token          this kit's HQ token (from `fieldkit hq kits add`)
  --timezone          IANA time zone, e.g. Europe/Berlin (default UTC)
  --event             event name shown on screens and receipts
  --currency          ISO 4217 code, e.g. EUR
  --release-key       a release public key (release.pub of `fieldkit release keys new`) the kit trusts for
                      updates; repeat for several. Never a key that came inside a bundle.
EOF
}

die() {
  echo "personalise.sh: error: $*" >&2
  echo "personalise.sh: the image was not changed." >&2
  exit 2
}

IMAGE="" KIT_ID="" SITE="" HUB=false HUB_ADDRESS="" SITE_PASSWORD="" HOTSPOT_SSID="" HOTSPOT_PASSWORD=""
UPLINK_SSID="" UPLINK_PASSWORD="" HQ_URL="" HQ_TOKEN="" TIMEZONE="" EVENT="" CURRENCY=""
HAVE_UPLINK_PASSWORD=false
RELEASE_KEYS=()

need_value() { [ "$#" -ge 2 ] && [ -n "${2-}" ] || die "option $1 needs a value"; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --kit-id) need_value "$@"; KIT_ID=$2; shift 2 ;;
    --site) need_value "$@"; SITE=$2; shift 2 ;;
    --hub) HUB=true; shift ;;
    --hub-address) need_value "$@"; HUB_ADDRESS=$2; shift 2 ;;
    --site-password) need_value "$@"; SITE_PASSWORD=$2; shift 2 ;;
    --hotspot-ssid) need_value "$@"; HOTSPOT_SSID=$2; shift 2 ;;
    --hotspot-password) need_value "$@"; HOTSPOT_PASSWORD=$2; shift 2 ;;
    --uplink-ssid) need_value "$@"; UPLINK_SSID=$2; shift 2 ;;
    --uplink-password) need_value "$@"; UPLINK_PASSWORD=$2; HAVE_UPLINK_PASSWORD=true; shift 2 ;;
    --hq-url) need_value "$@"; HQ_URL=$2; shift 2 ;;
    --hq-token) need_value "$@"; HQ_TOKEN=$2; shift 2 ;;
    --timezone) need_value "$@"; TIMEZONE=$2; shift 2 ;;
    --event) need_value "$@"; EVENT=$2; shift 2 ;;
    --currency) need_value "$@"; CURRENCY=$2; shift 2 ;;
    --release-key) need_value "$@"
      [ -f "$2" ] || die "--release-key $2: no such file"
      key_line=$(head -n 1 "$2" | tr -d '\r')
      [[ "$key_line" =~ ^fieldkit-release-ed25519\ [A-Za-z0-9+/]{43}=(\ [0-9a-f]{16})?$ ]] \
        || die "--release-key $2 is not a release public key (make one with: fieldkit release keys new --out DIR)"
      RELEASE_KEYS+=("$key_line"); shift 2 ;;
    -*) die "unknown option $1 (see personalise.sh --help)" ;;
    *) [ -z "$IMAGE" ] || die "only one IMAGE may be given (got '$IMAGE' and '$1')"; IMAGE=$1; shift ;;
  esac
done

# --- check everything before touching the image ---------------------------------------------------
[ -n "$IMAGE" ] || { usage >&2; die "no IMAGE given"; }
[ -f "$IMAGE" ] || die "$IMAGE: no such image file"
[ -w "$IMAGE" ] || die "$IMAGE: not writable"

id_ok() { [[ "$1" =~ ^[A-Za-z0-9_-]{1,32}$ ]]; }
[ -n "$KIT_ID" ] || die "--kit-id is required"
id_ok "$KIT_ID" || die "--kit-id '$KIT_ID' may only use letters, digits, - and _ (up to 32)"
[ -n "$SITE" ] || die "--site is required"
id_ok "$SITE" || die "--site '$SITE' may only use letters, digits, - and _ (up to 32)"

printable() { local LC_ALL=C; [[ "$1" =~ ^[\ -~]*$ ]]; }
wifi_password_ok() {  # WPA2-PSK: 8 to 63 printable ASCII characters
  local what=$1 value=$2
  [ "${#value}" -ge 8 ] && [ "${#value}" -le 63 ] || die "$what must be 8 to 63 characters long (got ${#value})"
  printable "$value" || die "$what may only use printable ASCII characters"
}
[ -n "$HOTSPOT_SSID" ] || die "--hotspot-ssid is required (the name of the kit's own Wi-Fi)"
[ "${#HOTSPOT_SSID}" -le 32 ] || die "--hotspot-ssid may be at most 32 characters"
printable "$HOTSPOT_SSID" || die "--hotspot-ssid may only use printable ASCII characters"
[ -n "$HOTSPOT_PASSWORD" ] || die "--hotspot-password is required (8 to 63 characters)"
wifi_password_ok "--hotspot-password" "$HOTSPOT_PASSWORD"
if [ -n "$UPLINK_SSID" ]; then
  [ "${#UPLINK_SSID}" -le 32 ] || die "--uplink-ssid may be at most 32 characters"
  printable "$UPLINK_SSID" || die "--uplink-ssid may only use printable ASCII characters"
  if $HAVE_UPLINK_PASSWORD; then wifi_password_ok "--uplink-password" "$UPLINK_PASSWORD"; fi
elif $HAVE_UPLINK_PASSWORD; then
  die "--uplink-password needs --uplink-ssid"
fi
if $HUB && [ -n "$HUB_ADDRESS" ]; then die "--hub and --hub-address exclude each other (the hub is this kit)"; fi
[ -z "$SITE_PASSWORD" ] || wifi_password_ok "--site-password" "$SITE_PASSWORD"
if [ -n "$HUB_ADDRESS" ] && [ -z "$SITE_PASSWORD" ]; then die "--hub-address needs --site-password"; fi
[ -z "$HUB_ADDRESS" ] || [[ "$HUB_ADDRESS" =~ ^[A-Za-z0-9.:-]+$ ]] || die "--hub-address '$HUB_ADDRESS' is not a host name or IP address"
if [ -n "$HQ_URL" ] || [ -n "$HQ_TOKEN" ]; then
  [ -n "$HQ_URL" ] && [ -n "$HQ_TOKEN" ] || die "--hq-url and --hq-token go together"
  [[ "$HQ_URL" =~ ^https?://[^[:space:]]+$ ]] || die "--hq-url must start with https:// (or http://)"
  printable "$HQ_TOKEN" || die "--hq-token may only use printable ASCII characters"
fi
if [ -n "$TIMEZONE" ]; then
  [[ "$TIMEZONE" =~ ^[A-Za-z0-9_+/-]+$ ]] || die "--timezone '$TIMEZONE' is not an IANA time zone name"
  if [ -d /usr/share/zoneinfo ] && [ ! -f "/usr/share/zoneinfo/$TIMEZONE" ]; then
    die "--timezone '$TIMEZONE' is not a known time zone (use an IANA name such as Europe/Berlin)"
  fi
fi
[ -z "$CURRENCY" ] || [[ "$CURRENCY" =~ ^[A-Z]{3}$ ]] || die "--currency must be a 3-letter ISO code such as EUR"
[ -z "$EVENT" ] || printable "$EVENT" || die "--event may only use printable ASCII characters"

for tool in sfdisk mcopy mdir; do
  command -v "$tool" >/dev/null || die "$tool is missing: install it (Debian/Ubuntu: sudo apt install fdisk mtools)"
done

# --- find the FAT boot partition inside the image --------------------------------------------------
dump=$(sfdisk --dump "$IMAGE" 2>/dev/null) || die "$IMAGE has no partition table: is it a Field Kit image?"
sector_size=$(sed -n 's/^sector-size: *\([0-9]*\).*/\1/p' <<<"$dump")
sector_size=${sector_size:-512}
boot_start=""
while IFS= read -r line; do
  [[ "$line" == *"start="* ]] || continue
  start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")
  type=$(sed -n 's/.*type= *\([^, ]*\).*/\1/p' <<<"$line" | tr '[:lower:]' '[:upper:]')
  case "$type" in
    # MBR FAT12/16/32 (CHS and LBA); GPT basic data and EFI system partitions.
    1|4|6|B|C|E|EF|EBD0A0A2-B9E5-4433-87C0-68B6B72699C7|C12A7328-F81F-11D2-BA4B-00A0C93EC93B)
      boot_start=$start; break ;;
  esac
done <<<"$dump"
[ -n "$boot_start" ] || die "$IMAGE has no FAT boot partition: is it a Raspberry Pi OS / Field Kit image?"
offset=$((boot_start * sector_size))
export MTOOLS_SKIP_CHECK=1
target="$IMAGE@@$offset"
mdir -i "$target" :: >/dev/null 2>&1 || die "$IMAGE: the boot partition at byte $offset does not hold a FAT file system"

# --- write fieldkit.toml ---------------------------------------------------------------------------
toml_string() {  # a TOML basic string: escape backslash and double quote
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "# Field Kit settings for kit $KIT_ID, written by personalise.sh on $(date -u +%Y-%m-%dT%H:%MZ)."
  echo "# Edit on any computer (plain text); the kit re-applies this file at every boot."
  echo "# It holds Wi-Fi and HQ secrets: keep the SD card safe."
  echo "[kit]"
  echo "id = $(toml_string "$KIT_ID")"
  echo "site = $(toml_string "$SITE")"
  [ -z "$TIMEZONE" ] || echo "timezone = $(toml_string "$TIMEZONE")"
  [ -z "$EVENT" ] || echo "event = $(toml_string "$EVENT")"
  [ -z "$CURRENCY" ] || echo "currency = $(toml_string "$CURRENCY")"
  echo
  echo "[network]"
  echo "hotspot_ssid = $(toml_string "$HOTSPOT_SSID")"
  echo "hotspot_password = $(toml_string "$HOTSPOT_PASSWORD")"
  if [ -n "$UPLINK_SSID" ]; then
    echo "uplink_ssid = $(toml_string "$UPLINK_SSID")"
    echo "uplink_password = $(toml_string "$UPLINK_PASSWORD")"
  fi
  echo
  echo "[site]"
  echo "hub = $HUB"
  [ -z "$HUB_ADDRESS" ] || echo "hub_address = $(toml_string "$HUB_ADDRESS")"
  [ -z "$SITE_PASSWORD" ] || echo "mqtt_password = $(toml_string "$SITE_PASSWORD")"
  if [ -n "$HQ_URL" ]; then
    echo
    echo "[sync]"
    echo "hq_url = $(toml_string "$HQ_URL")"
    echo "hq_token = $(toml_string "$HQ_TOKEN")"
  fi
  if [ "${#RELEASE_KEYS[@]}" -gt 0 ]; then
    echo
    echo "[update]"
    keys=""
    for k in "${RELEASE_KEYS[@]}"; do keys+="${keys:+, }$(toml_string "$k")"; done
    echo "trusted_keys = [$keys]"
  fi
} >"$tmp/fieldkit.toml"

mcopy -o -i "$target" "$tmp/fieldkit.toml" ::fieldkit.toml || die "could not write fieldkit.toml into $IMAGE"
echo "Wrote fieldkit.toml for kit '$KIT_ID' (site '$SITE') into the boot partition of $IMAGE."
echo "Flash the image to an SD card; the kit applies these settings at every boot."
