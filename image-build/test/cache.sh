# The image test's cache of Debian roots (sourced by run.sh). An entry is a root file system built by
# root-recipe.sh, named by a hash of everything that goes into it — root-recipe.sh, provision.sh (its
# package list), overlay-packages, the mirror and the read-only switch — and nothing else, so a
# change to the kit's code, units or the test's checks reuses it. Entries live outside the clone
# (a fresh CI clone on the same machine finds them) and at most FIELDKIT_IMAGE_TEST_CACHE_KEEP of them
# (default 2) are kept. Each entry has a lock file beside it: a run holds it shared while it reads
# the entry, a build or a prune holds it exclusive.
IMAGE_TEST_CACHE=${FIELDKIT_IMAGE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fieldkit/image-test}
IMAGE_TEST_CACHE_KEEP=${FIELDKIT_IMAGE_TEST_CACHE_KEEP:-2}

# cache_entry_name REPO MIRROR READONLY: e.g. bookworm-amd64-1a2b3c4d5e6f7a8b
cache_entry_name() {
  local repo=$1 mirror=$2 readonly=$3 f key
  key=$(
    printf 'fieldkit image-test root, layout 2\nmirror=%s\nreadonly=%s\n' "$mirror" "$readonly"
    for f in image-build/test/root-recipe.sh image-build/provision.sh image-build/test/overlay-packages; do
      # Comment lines aside: rewording one is no reason to download Debian again.
      printf '== %s\n' "$f"; grep -v '^[[:space:]]*#' "$repo/$f" || true
    done
  )
  key=$(printf '%s' "$key" | sha256sum | cut -c1-16)
  echo "$ROOT_SUITE-$ROOT_ARCH-$key"
}

# The kit's declared dependencies and build backend, and the Python that builds the wheels: what the
# cached wheelhouse depends on (not the kit's code or version).
_wheel_inputs() {  # REPO PY
  "$2" - "$1/pyproject.toml" <<'PYEOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
print("python", *sys.version_info[:2])
for req in project.get("build-system", {}).get("requires", []):
    print("requires", req)
for dep in sorted(project["project"].get("dependencies", [])):
    print("dependency", dep)
PYEOF
}

# wheels_entry_name REPO PY: e.g. wheels-py3.11-0123456789abcdef
wheels_entry_name() {
  local inputs ver
  inputs=$(_wheel_inputs "$1" "$2") || return 1
  ver=$(sed -n 's/^python \([0-9]*\) \([0-9]*\)$/\1.\2/p' <<<"$inputs")
  echo "wheels-py$ver-$(printf 'fieldkit image-test wheels, layout 1\n%s' "$inputs" | sha256sum | cut -c1-16)"
}

# build_requires REPO PY: the build backend's requirements, one per line
build_requires() {
  _wheel_inputs "$1" "$2" | sed -n 's/^requires //p'
}

# cache_prune KEEP_NAME: drop the oldest entries of its kind (by last use) beyond IMAGE_TEST_CACHE_KEEP, never
# KEEP_NAME nor one another run is reading; and any half-built one nobody is building.
cache_prune() {
  local keep_name=$1 n=1 entry name   # n=1: KEEP_NAME has the first place
  local kind=${keep_name%-*}-          # only entries of the same kind: bookworm-amd64-*, wheels-py3.11-*
  for entry in $(ls -1dt "$IMAGE_TEST_CACHE/$kind"*/ 2>/dev/null); do
    entry=${entry%/}
    name=$(basename "$entry")
    case "$name" in
      "$keep_name") continue ;;
      *.partial) ;;
      *) n=$((n + 1)); [ "$n" -gt "$IMAGE_TEST_CACHE_KEEP" ] || continue ;;
    esac
    # flock -n: skip what is in use; the lock file stays (removing it would race a new locker).
    if flock -n -x "$IMAGE_TEST_CACHE/${name%.partial}.lock" rm -rf "$entry"; then
      echo "image-test: cache: removed $entry"
    fi
  done
  return 0
}
