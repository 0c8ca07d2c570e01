#!/usr/bin/env bash
# One-time setup for HSIC on Debian 12: system packages (QGIS, GDAL, rasterio from Debian so that the
# process has ONE libgdal and ONE numpy), then a venv over Debian's python with the pinned ML stack.
# Idempotent: a stamp records what was installed; a second run with nothing changed returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.hsic-setup-stamp"
APT_PACKAGES="qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-rasterio python3-venv python3-pip python3-matplotlib xvfb"
want=$(cat constraints.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/hsic" ]; then
    exit 0
fi

missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Debian's interpreter, not the first python3 on PATH: only it sees qgis and osgeo.
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV from /usr/bin/python3 (--system-site-packages)"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
echo "setup: installing pinned Python packages into $VENV"
# This machine's pip.conf names local indexes that lack most packages; pip warns once per package.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]' \
    2> >(grep -v "is neither a file nor a directory" >&2)
# qgis_process with the HSIC provider on its path (see scripts/qgis_process).
ln -sfn ../../scripts/qgis_process "$VENV/bin/qgis_process"
echo "$want" > "$STAMP"
echo "setup: done"
