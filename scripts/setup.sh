#!/usr/bin/env bash
# Installs everything EXS needs on a Debian machine with Node.js, then builds it.
# Idempotent: skips what is already there. Used by README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# chromium: the editor's end-to-end tests drive Debian's browser (never a downloaded one).
APT_PACKAGES=(unixodbc unixodbc-dev odbc-postgresql odbc-mariadb libsqliteodbc chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's odbcinst.ini turns psqlODBC's communication log (and sometimes its debug log) on:
# every process that connects then leaves a /tmp/psqlodbc_*.log behind.
quiet_psqlodbc() {
  local ini=$1 edited
  [ -f "$ini" ] || return 0
  edited=$(mktemp)
  # Two passes: first the sections whose driver is psqlODBC, then their logging switched off.
  awk -F'=' '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    FNR == 1 { section = "" }
    /^[ \t]*\[/ { section = trim($0) }
    FNR == NR { if (tolower(trim($1)) == "driver" && $2 ~ /psqlodbc/) psql[section] = 1; next }
    section in psql && tolower(trim($1)) ~ /^(commlog|debug)$/ && trim($2) == "1" { sub(/1[ \t]*$/, "0") }
    { print }
  ' "$ini" "$ini" >"$edited"
  if ! cmp -s "$ini" "$edited"; then
    echo "setup: CommLog=0, Debug=0 for psqlODBC in $ini"
    $SUDO cp "$edited" "$ini"
  fi
  rm -f "$edited"
}
quiet_psqlodbc /etc/odbcinst.ini

# Mosquitto, PostgreSQL and MariaDB for the integration tests, unless already answering.
bash scripts/services.sh

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.exs-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci"
  # The odbc package would try to download a prebuilt binary first; build it against unixODBC.
  npm_config_build_from_source=true npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

npm run build --silent
