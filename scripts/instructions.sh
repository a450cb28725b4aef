#!/bin/sh
# instructions.sh TESTBINARY BENCH [N] prints the instructions one
# iteration of a Go benchmark executes: the difference between runs of N
# and of 1 iterations under valgrind's callgrind, divided by N-1, on one
# thread. Unlike time, it does not drift with the speed of the machine,
# so two builds of a micro-benchmark can be compared run against run.
# GOGC=off leaves the collector out; by default it runs as in production.
#
#   go test -c -o /tmp/schemas.test ./schemas
#   scripts/instructions.sh /tmp/schemas.test 'RecordsDecode/iot' 20001
#
# Needs valgrind (apt-get install valgrind).
set -eu
bin=$1 bench=$2 n=${3:-1001}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
	GOMAXPROCS=1 GOGC=${GOGC:-100} valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
		"$bin" -test.run '^$' -test.bench "$bench" -test.benchtime "${1}x" >/dev/null 2>"$out/err"
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/err"
}
one=$(count 1)
many=$(count "$n")
echo "$bench: $(( (many - one) / (n - 1) )) instructions an iteration"
