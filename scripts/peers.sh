#!/usr/bin/env bash
# Installs the real protocol peers the collector tests talk to, from Debian:
#   mosquitto, mosquitto_pub  an external MQTT broker and devices
#   rsyslogd + omrelp         a log shipper forwarding over RELP
#   logger (util-linux)       a syslog sender over TCP and UDP
#   chromium                  a headless browser that loads the status page
#   tmux                      a terminal that runs `sluice top`
#   promtool (prometheus)     checks compose/prometheus.yml and runs the unit
#                             tests of compose/alerts.yml
#
#   scripts/peers.sh          install what is missing (idempotent, quick when done)
#
# The tests start their own mosquitto and rsyslogd on free ports with private
# configuration files. Debian's packages start system services on install
# where an init system runs; those would hold ports that `sluice dev` uses
# (1883, 514), so they are kept from starting during the install and stopped
# if they run anyway.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { echo "peers.sh: $*"; }
die() { echo "peers.sh: $*" >&2; exit 1; }

missing=()
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
[[ -e /usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so || -n "$(find /usr/lib -name omrelp.so 2>/dev/null | head -1)" ]] || missing+=(rsyslog-relp)
command -v logger >/dev/null 2>&1 || missing+=(bsdutils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root to install them with apt-get"
	sudo=(sudo)
fi

# policy-rc.d answering 101 tells invoke-rc.d not to start services.
policy=/usr/sbin/policy-rc.d
had_policy=0
[[ -e $policy ]] && had_policy=1
if [[ $had_policy -eq 0 ]]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod +x "$policy"
	trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

say "installing ${missing[*]} with apt-get"
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
"${apt[@]}" update
"${apt[@]}" install -y -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >/dev/null

# Where the policy did not hold (systemd ignores it), stop what started.
for svc in mosquitto rsyslog prometheus; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		say "stopping and disabling the system $svc service"
		"${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done
for bin in mosquitto rsyslogd prometheus; do
	if pids=$(pgrep -x "$bin" 2>/dev/null) && [[ -n $pids ]]; then
		# Only a daemon started by the package runs as this; ours run from tests.
		for pid in $pids; do
			if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE '/etc/(mosquitto|rsyslog)|/usr/bin/prometheus'; then
				say "stopping the system $bin (pid $pid)"
				"${sudo[@]}" kill "$pid" || true
			fi
		done
	fi
done
say "installed ${missing[*]}"
