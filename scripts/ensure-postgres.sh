#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries are present: the tests and the local
# stack start their own throwaway cluster with initdb and pg_ctl.
set -euo pipefail

find_initdb() {
	if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then return 0; fi
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
	command -v initdb >/dev/null 2>&1
}

find_initdb && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "PostgreSQL server binaries not found: installing Debian's postgresql package..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
	find_initdb && exit 0
fi
cat >&2 <<'MSG'
PostgreSQL server binaries (initdb, pg_ctl) are needed and could not be installed.
  Debian/Ubuntu: sudo apt-get install postgresql
  macOS:         brew install postgresql@15
  or set PG_BINDIR to the folder that holds initdb and pg_ctl.
MSG
exit 1
