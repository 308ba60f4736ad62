#!/usr/bin/env bash
# A Python 3.11 base image from Debian's packages alone, for hosts that reach Debian's archive but no image
# registry: debootstrap bookworm (minbase) with python3.11 and its venv module, a virtual environment on PATH as
# /opt/python/bin/{python,pip} (the official python image's `python` and `pip`), then `docker import`.
#
#   docker/base/build.sh [--mirror URL] [--security-mirror URL] [--no-check-valid-until] [--tag TAG]
#
#   --mirror URL            Debian archive to bootstrap from and for apt-get inside the images
#                           (default $DEBIAN_MIRROR, else http://deb.debian.org/debian)
#   --security-mirror URL   bookworm-security archive for apt-get inside the images (default: none)
#   --no-check-valid-until  the mirror serves a frozen snapshot: apt inside the images accepts expired Release files
#   --tag TAG               image name (default tradepipe-base:bookworm)
#
# Runs as root (debootstrap, chroot). Needs Debian's `debootstrap` package and a Docker engine. About 1 minute.
# The Dockerfiles take it with `--build-arg BASE_IMAGE=tradepipe-base:bookworm` (docker/docker-compose.local.yml).
set -euo pipefail

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security=""
valid_until=1
tag="tradepipe-base:bookworm"
while [ $# -gt 0 ]; do
  case "$1" in
    --mirror) mirror="$2"; shift 2 ;;
    --security-mirror) security="$2"; shift 2 ;;
    --no-check-valid-until) valid_until=0; shift ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "docker/base/build.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
command -v debootstrap >/dev/null || { echo "docker/base/build.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "docker/base/build.sh: debootstrap needs root" >&2; exit 1; }

rootfs="$(mktemp -d /var/tmp/tradepipe-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
# python3-distutils: the virtual python3.11-distutils that python3.11-venv needs (debootstrap picks no provider)
debootstrap --variant=minbase --include=ca-certificates,netbase,passwd,python3.11,python3.11-venv,python3-distutils \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

{
  echo "deb $mirror bookworm main"
  echo "deb $mirror bookworm-updates main"
  [ -z "$security" ] || echo "deb $security bookworm-security main"
} >"$rootfs/etc/apt/sources.list"
if [ "$valid_until" = 0 ]; then
  echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99check-valid-until"
fi
# as Debian's docker images: no recommends, no caches left behind by apt
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
chroot "$rootfs" python3.11 -m venv /opt/python
chroot "$rootfs" /opt/python/bin/python -m pip --version >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/var/log/*.log

tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap bookworm minbase + python3.11 (docker/base/build.sh)" - "$tag" >/dev/null
echo "$tag"
