#!/bin/bash -e
# Runs inside the image (pi-gen's chroot): the same installer as every other install path.
bash /tmp/fieldkit/image-build/provision.sh --source /tmp/fieldkit --wheel "$(ls /tmp/fieldkit/dist/fieldkit-*.whl)"
rm -rf /tmp/fieldkit
