#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is present: tests/e2e drives it to
# PUT a file from a browser page to a signed URL, as the app does.
set -euo pipefail

find_chromium() {
	if [ -n "${CHROMIUM_BIN:-}" ] && command -v "$CHROMIUM_BIN" >/dev/null 2>&1; then return 0; fi
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1
}

find_chromium && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; } && command -v apt-get >/dev/null; then
	echo "Chromium not found: installing Debian's chromium package (for the browser upload test)..."
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	find_chromium && exit 0
fi
cat >&2 <<'MSG'
Chromium is needed for the browser upload test and could not be installed.
  Debian/Ubuntu: sudo apt-get install chromium
  or set CHROMIUM_BIN to a Chromium or Chrome binary.
MSG
exit 1
