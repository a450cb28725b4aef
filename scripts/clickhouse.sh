#!/usr/bin/env bash
# Provides the ClickHouse that `make test` and `make demo` talk to, on
# 127.0.0.1:9000 (native) and 127.0.0.1:8123 (HTTP).
#
#   scripts/clickhouse.sh [start]   install if missing, reuse a running server,
#                                   or start one under .local/clickhouse/
#   scripts/clickhouse.sh stop      stop the server this script started
#   scripts/clickhouse.sh status    say whether a server answers, and whose it is
#
#   scripts/clickhouse.sh tls-env   print the TLS port, CA, user and password
#                                   file of the running server, as NAME=value
#                                   lines (the tests of --clickhouse-tls read them)
#
# Environment: CLICKHOUSE_WAIT (seconds to wait for start-up, default 60);
# CLICKHOUSE_DIR, CLICKHOUSE_TCP_PORT and CLICKHOUSE_HTTP_PORT run a second,
# private server (tests that stop ClickHouse on purpose use one, so as not to
# pull the shared server from under other tests). CLICKHOUSE_TLS_PORT is the
# native protocol over TLS: 9440 for the shared server, none for a private
# one unless given (empty: none).
#
# With a TLS port, the script makes a CA and a server certificate for
# 127.0.0.1 and localhost with openssl under $DIR/tls/ (ca.pem, server.pem,
# server-key.pem), and a user sluice_tls whose random password is in
# $DIR/tls/password (users.d/sluice_tls.xml holds only its SHA-256). A server
# this script started earlier without the TLS port is restarted once to
# open it; the user needs no restart (ClickHouse rereads users.d).
#
# The server runs detached (own session, output in .local/clickhouse/log/) so
# that a CI step or `make` piping this script's output does not hang waiting
# for the pipe to close.
set -euo pipefail

# Debian puts clickhouse-server in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CLICKHOUSE_DIR:-"$ROOT/.local/clickhouse"}
LOG_DIR="$DIR/log"
PID_FILE="$DIR/clickhouse-server.pid"
CONFIG="$DIR/config.xml"
HOST=127.0.0.1
TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}
HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
WAIT=${CLICKHOUSE_WAIT:-60}
if [[ -n ${CLICKHOUSE_TLS_PORT+set} ]]; then
	TLS_PORT=$CLICKHOUSE_TLS_PORT
elif [[ -z ${CLICKHOUSE_DIR:-} ]]; then
	TLS_PORT=9440
else
	TLS_PORT=
fi
TLS_DIR="$DIR/tls"
TLS_USER=sluice_tls

say() { echo "clickhouse.sh: $*"; }
die() { echo "clickhouse.sh: $*" >&2; exit 1; }

# Upstream packages ship one `clickhouse` binary with subcommands; Debian's
# 18.16 ships separate clickhouse-server and clickhouse-client binaries.
SERVER=()
CLIENT=()
find_binaries() {
	SERVER=()
	CLIENT=()
	if command -v clickhouse-server >/dev/null 2>&1; then
		SERVER=(clickhouse-server)
	elif command -v clickhouse >/dev/null 2>&1; then
		SERVER=(clickhouse server)
	fi
	if command -v clickhouse-client >/dev/null 2>&1; then
		CLIENT=(clickhouse-client)
	elif command -v clickhouse >/dev/null 2>&1; then
		CLIENT=(clickhouse client)
	fi
}

# apt_install installs Debian packages with apt-get, as root or through
# sudo; what names what is missing, for the error when neither works.
apt_install() {
	local what=$1
	shift
	command -v apt-get >/dev/null 2>&1 ||
		die "$what is not installed and apt-get is not available; install $*"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "$what is not installed; run as root to install it with apt-get"
		sudo=(sudo)
	fi
	say "installing $* with apt-get"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		-o Dpkg::Use-Pty=0 --no-install-recommends "$@" >/dev/null
}

JUST_INSTALLED=0
install_clickhouse() {
	find_binaries
	if [[ ${#SERVER[@]} -gt 0 && ${#CLIENT[@]} -gt 0 ]]; then
		return
	fi
	apt_install ClickHouse clickhouse-server clickhouse-client
	JUST_INSTALLED=1
	find_binaries
	[[ ${#SERVER[@]} -gt 0 && ${#CLIENT[@]} -gt 0 ]] ||
		die "apt-get installed ClickHouse but clickhouse-server/clickhouse-client are still not on PATH"
}

# query runs one statement against 127.0.0.1:9000. The 18.16 client ignores
# receive_timeout during the handshake, so only an outer timeout keeps a
# listener that accepts but never answers from stalling the caller.
query() {
	timeout 3 "${CLIENT[@]}" --host "$HOST" --port "$TCP_PORT" --connect_timeout 2 -q "$1" 2>/dev/null
}

answers() { [[ $(query 'SELECT 1' || true) == 1 ]]; }

# port_taken tells a server that is still starting (or something else on the
# port) from a free port, without depending on ss or netstat.
port_taken() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$TCP_PORT" 2>/dev/null; }

# cmdline prints a process's command line with spaces between arguments.
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null; }

# our_pid prints the pid of the server this script started, if it still runs.
# Matching the command line guards against the pid having been reused.
our_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ $(cmdline "$pid") == *"--config-file=$CONFIG"* ]] || return 1
	echo "$pid"
}

write_config() {
	mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/format_schemas" "$LOG_DIR"
	# Caches are allocated on demand, but their defaults (5-8 GiB) would let a
	# long demo crowd out Kafka and the workers on a 2-core CI machine.
	cat >"$CONFIG" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/clickhouse.sh; rewritten on every start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>$HOST</listen_host>
    <tcp_port>$TCP_PORT</tcp_port>
    <http_port>$HTTP_PORT</http_port>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <umask>022</umask>
    <max_connections>1024</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
$(tls_config)
</yandex>
EOF
	cat >"$DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Generated by scripts/clickhouse.sh; rewritten on every start. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>1073741824</max_memory_usage>
            <max_memory_usage_for_all_queries>2147483648</max_memory_usage_for_all_queries>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

# make_tls writes, once, the CA, the server's certificate and the TLS user's
# password under $TLS_DIR, and the user into users.d (rewritten every time,
# which ClickHouse picks up within seconds, restart or not). A certificate
# that expires within a day is made again.
make_tls() {
	[[ -n $TLS_PORT ]] || return 0
	command -v openssl >/dev/null 2>&1 || apt_install openssl openssl
	mkdir -p "$TLS_DIR" "$DIR/users.d"
	if ! openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1 ||
		[[ ! -s $TLS_DIR/ca.pem || ! -s $TLS_DIR/server-key.pem ]]; then
		say "making a CA and a server certificate for the TLS port in $TLS_DIR"
		(
			cd "$TLS_DIR"
			umask 077
			openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sluice-test-clickhouse-ca" \
				-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
				-keyout ca-key.pem -out ca.pem 2>/dev/null
			openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr 2>/dev/null
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >server.ext
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
				-extfile server.ext -out server.pem 2>/dev/null
			rm -f server.csr server.ext
			chmod 644 ca.pem server.pem
		) || die "openssl could not make the certificates in $TLS_DIR"
	fi
	if [[ ! -s $TLS_DIR/password ]]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$TLS_DIR/password")
	fi
	local sha
	sha=$(tr -d '\n' <"$TLS_DIR/password" | sha256sum | cut -d' ' -f1)
	cat >"$DIR/users.d/$TLS_USER.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/clickhouse.sh: the user the tests of TLS connections
     log in as; its password is in $TLS_DIR/password. (No double hyphen in an
     XML comment: 18.16 refuses the file.) -->
<yandex>
    <users>
        <$TLS_USER>
            <password_sha256_hex>$sha</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </$TLS_USER>
    </users>
</yandex>
EOF
}

# tls_config prints the config.xml lines of the TLS port, if there is one.
# 18.16 reads the server's certificate from <openSSL><server>; clients are
# not asked for one (verificationMode none).
tls_config() {
	[[ -n $TLS_PORT ]] || return 0
	cat <<EOF
    <tcp_port_secure>$TLS_PORT</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>$TLS_DIR/server.pem</certificateFile>
            <privateKeyFile>$TLS_DIR/server-key.pem</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
EOF
}

# tls_answers reports whether a TLS handshake checked against the CA in
# directory $2 (default $TLS_DIR) succeeds on port $1 (default $TLS_PORT).
tls_answers() {
	local port=${1:-$TLS_PORT} dir=${2:-$TLS_DIR}
	[[ -n $port && -s $dir/ca.pem ]] || return 1
	timeout 3 openssl s_client -connect "$HOST:$port" -CAfile "$dir/ca.pem" -verify_return_error \
		</dev/null >/dev/null 2>&1
}

show_logs() {
	local f
	for f in "$LOG_DIR/stdout.log" "$LOG_DIR/clickhouse-server.err.log"; do
		if [[ -s $f ]]; then
			echo "---- last lines of $f" >&2
			tail -n 30 "$f" >&2
		fi
	done
}

# wait_ready waits until SELECT 1 works (status 0). With a pid it stops
# early when that process exits (status 2) rather than waiting out the
# timeout (status 1).
wait_ready() {
	local pid=${1:-} start=$SECONDS last=-5 waited
	while ! answers; do
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 2
		fi
		waited=$((SECONDS - start))
		if ((waited >= WAIT)); then
			return 1
		fi
		if ((waited - last >= 5)); then
			say "waiting for ClickHouse on $HOST:$TCP_PORT (${waited}s of ${WAIT}s)"
			last=$waited
		fi
		sleep 1
	done
}

# system_server_pid prints the pid of a ClickHouse server not started by this
# script, such as the service Debian's postinst starts where systemd runs.
system_server_pid() {
	local f pid cmd
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		cmd=$(cmdline "$pid") || continue
		if [[ $cmd =~ (^|/)clickhouse(-server|\ server)\  && $cmd != *"--config-file=$CONFIG"* ]]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

reused() { say "reusing the ClickHouse $(query 'SELECT version()') answering on $HOST:$TCP_PORT"; }

# lacks_tls reports whether the server answering on $TCP_PORT was started
# without the TLS port this script now wants. Its config file says so (it is
# only written when a server starts): a handshake that fails once on a
# loaded machine must not restart the server under other tests. A server
# this script did not start is left alone, with a word.
lacks_tls() {
	[[ -n $TLS_PORT ]] || return 1
	local pid
	if pid=$(our_pid); then
		grep -q "<tcp_port_secure>$TLS_PORT</tcp_port_secure>" "$CONFIG" && return 1
		say "the ClickHouse started earlier (pid $pid) has no TLS port; restarting it once to open $HOST:$TLS_PORT"
		return 0
	fi
	tls_answers ||
		say "warning: the ClickHouse on $HOST:$TCP_PORT was not started by this script and has no TLS port on $TLS_PORT; the --clickhouse-tls tests need one (stop that server and run this script again)"
	return 1
}

start() {
	install_clickhouse
	make_tls
	if answers; then
		if ! lacks_tls; then
			reused
			return
		fi
		stop
	fi

	local pid rc
	if [[ $JUST_INSTALLED == 1 ]] && pid=$(system_server_pid); then
		# On machines with systemd, installing the package also starts the
		# system service; starting ours as well would race it for the port.
		say "apt-get started the system's ClickHouse (pid $pid); waiting for it"
		rc=0
		wait_ready "$pid" || rc=$?
		case $rc in
		0) reused && return ;;
		1) die "the system's ClickHouse (pid $pid) did not answer within ${WAIT}s; see /var/log/clickhouse-server/" ;;
		esac
		say "the system's ClickHouse exited; starting our own"
	fi

	if pid=$(our_pid); then
		say "the ClickHouse started earlier (pid $pid) does not answer yet"
	elif port_taken; then
		say "something listens on $HOST:$TCP_PORT but does not answer yet"
		wait_ready || die "something holds $HOST:$TCP_PORT but is not a ClickHouse answering SELECT 1 within ${WAIT}s"
		reused
		return
	else
		write_config
		say "starting ClickHouse in $DIR"
		cd "$DIR"
		# In a non-interactive shell the background child is not a process
		# group leader, so setsid and nohup exec in place and $! is the
		# server's own pid.
		setsid nohup "${SERVER[@]}" --config-file="$CONFIG" \
			</dev/null >>"$LOG_DIR/stdout.log" 2>&1 &
		pid=$!
		echo "$pid" >"$PID_FILE"
	fi

	rc=0
	wait_ready "$pid" || rc=$?
	case $rc in
	0) say "ClickHouse $(query 'SELECT version()') is up on $HOST:$TCP_PORT (pid $pid, logs in $LOG_DIR)" ;;
	1)
		show_logs
		kill "$pid" 2>/dev/null || true
		rm -f "$PID_FILE"
		die "ClickHouse did not answer on $HOST:$TCP_PORT within ${WAIT}s; stopped it"
		;;
	*)
		show_logs
		rm -f "$PID_FILE"
		die "ClickHouse (pid $pid) exited during start-up"
		;;
	esac
}

stop() {
	local pid
	if ! pid=$(our_pid); then
		rm -f "$PID_FILE"
		say "no ClickHouse started by this script is running; leaving any other alone"
		return
	fi
	say "stopping ClickHouse (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local waited=0
	while kill -0 "$pid" 2>/dev/null; do
		if ((waited >= 30)); then
			say "still running after 30s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	rm -f "$PID_FILE"
	say "stopped"
}

status() {
	find_binaries
	[[ ${#CLIENT[@]} -gt 0 ]] || die "ClickHouse is not installed"
	local pid
	if answers; then
		if pid=$(our_pid); then
			say "ClickHouse $(query 'SELECT version()') answers on $HOST:$TCP_PORT (started by this script, pid $pid)"
		else
			say "ClickHouse $(query 'SELECT version()') answers on $HOST:$TCP_PORT (not started by this script)"
		fi
		return
	fi
	say "no ClickHouse answers on $HOST:$TCP_PORT"
	return 1
}

# tls_env prints where the running server on $TCP_PORT takes TLS
# connections, for the tests: the server this script started, else one that
# another checkout's copy of this script started (its --config-file names
# the directory).
tls_env() {
	local config=$CONFIG dir=$DIR pid f cmd port
	if ! our_pid >/dev/null; then
		config=
		for f in /proc/[0-9]*; do
			pid=${f#/proc/}
			cmd=$(cmdline "$pid") || continue
			# Only the server on $TCP_PORT: private servers of other tests,
			# which stop when their test ends, have TLS directories too.
			if [[ $cmd =~ clickhouse.*--config-file=([^ ]*/config.xml) ]] &&
				[[ -s $(dirname "${BASH_REMATCH[1]}")/tls/password ]] &&
				grep -q "<tcp_port>$TCP_PORT</tcp_port>" "${BASH_REMATCH[1]}"; then
				config=${BASH_REMATCH[1]}
				break
			fi
		done
		[[ -n $config ]] || die "no ClickHouse started by this script runs with a TLS port: run scripts/clickhouse.sh start"
		dir=$(dirname "$config")
	fi
	port=$(sed -n 's:.*<tcp_port_secure>\([0-9]*\)</tcp_port_secure>.*:\1:p' "$config")
	[[ -n $port ]] || die "the ClickHouse of $dir has no TLS port: run scripts/clickhouse.sh start to restart it with one"
	tls_answers "$port" "$dir/tls" || die "no TLS handshake on $HOST:$port with $dir/tls/ca.pem"
	echo "CLICKHOUSE_TLS_ADDR=$HOST:$port"
	echo "CLICKHOUSE_TLS_CA=$dir/tls/ca.pem"
	echo "CLICKHOUSE_TLS_USER=$TLS_USER"
	echo "CLICKHOUSE_TLS_PASSWORD_FILE=$dir/tls/password"
}

case "${1:-start}" in
start) start ;;
tls-env) tls_env ;;
stop)
	find_binaries
	stop
	;;
status) status ;;
*) die "usage: $0 [start|stop|status|tls-env]" ;;
esac
