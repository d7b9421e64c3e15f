#!/bin/sh
# The browser tests drive Debian's Chromium through Playwright (browsers cannot be downloaded here).
# Install it when missing. Never fails the build: without Chromium the browser tests skip, loudly.
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "WARNING: Chromium is missing and this user cannot run apt-get; browser tests will be SKIPPED." >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "Installing Chromium for the browser tests (apt-get)..." >&2
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "WARNING: could not install Chromium (apt-get failed); browser tests will be SKIPPED." >&2
exit 0
