#!/usr/bin/env bash
# The services the integration tests talk to, on a Debian machine: Mosquitto on 1883,
# PostgreSQL on 5432 (database test, user postgres, trust on 127.0.0.1) and MariaDB on 3306
# (database test, root with an empty password). A service whose port already answers on
# 127.0.0.1 is left exactly as it is; any other is installed if missing, started without
# systemd (CI machines have none), waited for, and given what the tests need.
# Idempotent. Called by scripts/setup.sh.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""

port_answers() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for_port() {
  local name=$1 port=$2 deadline=$((SECONDS + 60))
  until port_answers "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "services: $name did not answer on 127.0.0.1:$port within 60 s" >&2
      return 1
    fi
    sleep 0.5
  done
}

apt_install() {
  local pkg=$1
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    return 0
  fi
  echo "services: installing $pkg"
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}

# Without systemd nobody creates the runtime directories the daemons write to.
runtime_dir() {
  local dir=$1 owner=$2 mode=$3
  $SUDO install -d -o "$owner" -g "$owner" -m "$mode" "$dir"
}

setup_mosquitto() {
  port_answers 1883 && return 0
  apt_install mosquitto
  if ! port_answers 1883; then
    # Mosquitto drops root before it writes its pid and log files.
    runtime_dir /run/mosquitto mosquitto 0755
    runtime_dir /var/log/mosquitto mosquitto 0755
    if ! $SUDO start-stop-daemon --status --exec /usr/sbin/mosquitto; then
      echo "services: starting mosquitto"
      $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
    fi
  fi
  wait_for_port mosquitto 1883
}

# "VERSION NAME" of the cluster on port 5432, creating one if the package made none.
postgres_cluster() {
  local cluster
  cluster=$(pg_lsclusters -h | awk '$3 == 5432 { print $1, $2; exit }')
  if [ -z "$cluster" ]; then
    local version
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    echo "services: creating PostgreSQL cluster $version/main" >&2
    $SUDO pg_createcluster --port 5432 "$version" main >/dev/null
    cluster="$version main"
  fi
  echo "$cluster"
}

setup_postgres() {
  port_answers 5432 && return 0
  apt_install postgresql
  local cluster version name hba
  cluster=$(postgres_cluster)
  read -r version name <<<"$cluster"
  hba=/etc/postgresql/$version/$name/pg_hba.conf
  runtime_dir /run/postgresql postgres 2775

  # The tests log in as postgres over TCP without a password. pg_hba.conf is first-match,
  # so the trust line goes on top.
  local trust="host all all 127.0.0.1/32 trust  # EXS integration tests"
  if ! $SUDO grep -qxF "$trust" "$hba"; then
    echo "services: trusting 127.0.0.1 in $hba"
    $SUDO sed -i "1i $trust" "$hba"
  fi

  if [ "$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $4 }')" != online ]; then
    echo "services: starting PostgreSQL $version/$name"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
  fi
  # A cluster that was already running reads the new pg_hba.conf only on reload.
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload
  wait_for_port postgresql 5432

  # -w: never prompt for a password (CI has no terminal to answer it).
  local psql=(psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  # The reload is a signal the server handles in its own time: wait until trust applies.
  local deadline=$((SECONDS + 30))
  until "${psql[@]}" -c 'SELECT 1' >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      "${psql[@]}" -c 'SELECT 1' # show why
      return 1
    fi
    sleep 0.5
  done
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
    echo "services: creating PostgreSQL database test"
    "${psql[@]}" -c 'CREATE DATABASE test'
  fi
}

setup_mariadb() {
  port_answers 3306 && return 0
  apt_install mariadb-server
  if ! port_answers 3306; then
    runtime_dir /run/mysqld mysql 0755
    echo "services: starting MariaDB"
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  wait_for_port mariadb 3306

  # Debian's root@localhost logs in by unix_socket only: as the system root, over the socket.
  # The tests connect over TCP as root with an empty password, which MariaDB matches to
  # root@127.0.0.1 or, when it resolves names, root@localhost.
  echo "services: MariaDB database test, root with an empty password on 127.0.0.1"
  $SUDO mariadb --protocol=socket -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS test;
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

setup_mosquitto
setup_postgres
setup_mariadb
