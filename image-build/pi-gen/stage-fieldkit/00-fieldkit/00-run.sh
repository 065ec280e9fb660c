#!/bin/bash -e
# Runs on the build host: copy the kit's sources and wheel (placed in files/ by build.sh) into the image.
install -d "${ROOTFS_DIR}/tmp/fieldkit"
cp -r files/src/. "${ROOTFS_DIR}/tmp/fieldkit/"
# No default passwords: the first user exists for pi-gen but cannot log in with a password.
on_chroot <<CHROOT
passwd -l "${FIRST_USER_NAME}"
CHROOT
