#!/usr/bin/env bash
# bench/run.sh: sendergate's load benchmark on loopback (see docs/PERFORMANCE.md).
#
# Builds sendergate, bench/loadgen, bench/sink and bench/policyload; starts
# the sink (upstream MTA + customer DNS) and sendergate with a private
# config; creates an organization, an SMTP account and two domains (RSA-2048
# and Ed25519), publishes their CNAMEs in the sink's DNS file and verifies
# them; then runs the matrix and prints a markdown table. Every process it
# starts is stopped on exit. Run from anywhere: bench/run.sh
#
# Environment:
#   DUR=5s          duration of each SMTP row
#   POLICY_N=200000 requests of the pipelined policy-service row
#   OUT=DIR         where the table and logs go (default: a new /tmp dir, kept)
#   SG_BIN=PATH     use this sendergate binary instead of building one
#   PROFILE=1       serve pprof on a loopback debug.listen and save a CPU
#                   profile of each sendergate row in OUT (*.pprof)
#   PPROF_URL=URL   base URL of another pprof endpoint to profile instead
#   SENDERGATE_RSA_SIGNER=go  (passed on) sign RSA with crypto/rsa, not OpenSSL
#   GOBENCH=1       also run the Go micro-benchmarks afterwards
#   ROWS=REGEX      run only the SMTP rows whose "LABEL CONNSxPER" matches
#                   (bash =~), e.g. ROWS='sendergate.*8x50'
#   (the host's own RSA-2048 signing time, `openssl speed`, is measured
#   before and after the matrix: OUT/host.txt and the log)
#   SINK_BATCH=0    the sink writes each reply line on its own (go-smtp's
#                   behaviour) instead of batching pipelined replies as
#                   Postfix does (default 1)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-5s}
POLICY_N=${POLICY_N:-200000}
OUT=${OUT:-$(mktemp -d /tmp/sendergate-bench.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/sendergate-bench-work.XXXXXX)
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# free_ports N: N distinct free loopback TCP ports (also free for UDP).
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks, ports = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    socks += [t, u]; ports.append(p)
print(" ".join(map(str, ports)))
EOF
}

# cpu_ticks PID: user+system clock ticks consumed so far by PID.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# io_calls PID: read and write system calls made so far by PID ("syscr syscw").
io_calls() { awk '/^syscr:/{r=$2} /^syscw:/{w=$2} END{print r, w}' "/proc/$1/io"; }
# busy_ticks: clock ticks all CPUs of the machine spent busy so far.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
TCK=$(getconf CLK_TCK)

build() {
	log "building into $WORK/bin"
	mkdir -p "$WORK/bin"
	(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/loadgen ./bench/sink ./bench/policyload)
	if [[ -n "${SG_BIN:-}" ]]; then
		cp "$SG_BIN" "$WORK/bin/sendergate"
	else
		(cd "$ROOT" && go build -o "$WORK/bin/sendergate" ./cmd/sendergate)
	fi
}

start_sink() {
	echo '[]' >"$WORK/records.json"
	"$WORK/bin/sink" -addr "127.0.0.1:$SINK_PORT" -dns "127.0.0.1:$CDNS_PORT" \
		-records "$WORK/records.json" -zone sg.localhost -zone-server "127.0.0.1:$ZONE_PORT" \
		-lifetime 15m -batch="$([[ "${SINK_BATCH:-1}" == 0 ]] && echo false || echo true)" 2>"$OUT/sink.log" &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
}

start_sendergate() {
	cat >"$WORK/sendergate.toml" <<EOF
data_dir = "$WORK/data"
database = "sqlite:$WORK/data/sendergate.db"
hostname = "bench.localhost"
[submission]
listen = "127.0.0.1:$SUB_PORT"
listen_tls = ""
[relay]
upstream = "127.0.0.1:$SINK_PORT"
upstream_tls = "none"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
public_url = "http://127.0.0.1:$ADMIN_PORT"
[dns]
listen = "127.0.0.1:$ZONE_PORT"
resolvers = ["127.0.0.1:$CDNS_PORT"]
[milter]
listen = ""
[policyd]
listen = "127.0.0.1:$POLICYD_PORT"
[bounce]
listen = ""
[sandbox]
daily_limit = 100000000
EOF
	if [[ "${PROFILE:-}" == 1 ]]; then
		printf '[debug]\nlisten = "127.0.0.1:%s"\n' "$DEBUG_PORT" >>"$WORK/sendergate.toml"
		PPROF_URL=${PPROF_URL:-http://127.0.0.1:$DEBUG_PORT}
	fi
	"$WORK/bin/sendergate" serve -config "$WORK/sendergate.toml" >"$OUT/sendergate.log" 2>&1 &
	SG_PID=$!
	PIDS+=("$SG_PID")
	local i
	for i in $(seq 300); do
		if curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$SG_PID" 2>/dev/null || { tail -20 "$OUT/sendergate.log" >&2; exit 1; }
		sleep 0.1
	done
	log "sendergate not healthy after 30s"; tail -20 "$OUT/sendergate.log" >&2; exit 1
}

# api METHOD PATH [BODY]: admin API call; prints the body, fails on >= 300.
api() {
	local code
	code=$(curl -sS -o "$WORK/resp.json" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://127.0.0.1:$ADMIN_PORT$2")
	if [[ "$code" -ge 300 ]]; then
		log "$1 $2 -> $code: $(cat "$WORK/resp.json")"; exit 1
	fi
	cat "$WORK/resp.json"
}

# json EXPR: evaluate a Python expression on the JSON document on stdin (d).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# add_domain NAME BODY: create, publish the CNAMEs in the sink's DNS, verify.
add_domain() {
	api POST /v1/orgs/bench/domains "$2" >"$WORK/domain.json"
	python3 - "$WORK/domain.json" "$WORK/records.json" <<'EOF'
import json, sys
recs = json.load(open(sys.argv[2]))
recs += [{"host": r["host"], "value": r["value"]} for r in json.load(open(sys.argv[1]))["records"]]
json.dump(recs, open(sys.argv[2] + ".tmp", "w"))
EOF
	mv "$WORK/records.json.tmp" "$WORK/records.json"
	local status
	status=$(api POST "/v1/orgs/bench/domains/$1/verify" | json 'd["status"]')
	[[ "$status" == verified ]] || { log "domain $1: $status"; cat "$WORK/resp.json" >&2; exit 1; }
	log "domain $1 verified"
}

setup_tenant() {
	KEY=$(cat "$WORK/data/admin.key")
	api POST /v1/orgs '{"name":"bench"}' >/dev/null
	local acct
	acct=$(api POST /v1/orgs/bench/smtp-accounts '{"name":"app"}')
	USER_NAME=$(json 'd["username"]' <<<"$acct")
	USER_PASS=$(json 'd["password"]' <<<"$acct")
	add_domain rsa.bench.example '{"name":"rsa.bench.example","return_path":"mailing","dkim_algorithm":"rsa-2048"}'
	add_domain ed.bench.example '{"name":"ed.bench.example","return_path":"mailing","dkim_algorithm":"ed25519","dkim_selector":"ed1"}'
}

# smtp_row LABEL ADDR CONNS PER_CONN [loadgen flags...]: one table row, with
# the CPU (in cores) used meanwhile by sendergate and by the sink,
# sendergate's CPU milliseconds per message, and its read and write system
# calls per message (from /proc/PID/io; exact, unlike CPU on a busy machine).
smtp_row() {
	local label=$1 addr=$2 c=$3 per=$4
	shift 4
	[[ -z "${ROWS:-}" || "$label ${c}x$per" =~ $ROWS ]] || return 0
	local sg0 sk0 all0 io0 t0 t1 row prof="" prof_pid=""
	if [[ -n "${PPROF_URL:-}" && "$addr" == *":$SUB_PORT" ]]; then
		prof="$OUT/$(tr -c 'a-zA-Z0-9\n' _ <<<"$label")_c${c}_p${per}.pprof"
		curl -fsS -o "$prof" "$PPROF_URL/debug/pprof/profile?seconds=${DUR%s}" &
		prof_pid=$!
	fi
	sg0=$(cpu_ticks "$SG_PID"); sk0=$(cpu_ticks "$SINK_PID"); all0=$(busy_ticks); io0=$(io_calls "$SG_PID"); t0=$(date +%s.%N)
	row=$("$WORK/bin/loadgen" -addr "$addr" -c "$c" -per-conn "$per" -duration "$DUR" -max-time 2m \
		-format row -label "$label" "$@") || true
	t1=$(date +%s.%N)
	if [[ -n "$prof_pid" ]]; then wait "$prof_pid" || true; fi
	[[ -n "$row" ]] || row="| $label | $c | $per | 0 | 0 | - | - | - | - | - | failed | - |"
	awk -v row="$row" -v io0="$io0" -v io1="$(io_calls "$SG_PID")" -v sg0="$sg0" -v sg1="$(cpu_ticks "$SG_PID")" -v sk0="$sk0" -v sk1="$(cpu_ticks "$SINK_PID")" \
		-v all0="$all0" -v all1="$(busy_ticks)" \
		-v s="$t0" -v e="$t1" -v t="$TCK" 'BEGIN {
			split(row, f, "|"); rate = f[6] + 0
			sg = (sg1 - sg0) / t / (e - s); sk = (sk1 - sk0) / t / (e - s)
			all = (all1 - all0) / t / (e - s)
			split(io0, a, " "); split(io1, b, " "); n = f[5] + 0
			calls = (n > 0 && sg > 0.005) ? sprintf("%.1f + %.1f", (b[1] - a[1]) / n, (b[2] - a[2]) / n) : "-"
			printf "%s %.2f | %.2f | %s | %.2f | %s |\n", row, sg, sk, (rate > 0 && sg > 0.005) ? sprintf("%.2f", sg * 1000 / rate) : "-", all, calls
		}' | tee -a "$OUT/table.md"
}

smtp_matrix() {
	local sink="127.0.0.1:$SINK_PORT" sg="127.0.0.1:$SUB_PORT" auth=(-user "$USER_NAME" -pass "$USER_PASS")
	{
		echo "| scenario | conns | msgs/conn | msgs ok | msg/s | p50 ms | p90 ms | p99 ms | max ms | setup p50 ms | errors | loadgen cores | sendergate cores | sink cores | sendergate CPU ms/msg | machine busy cores | sendergate read + write calls/msg |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	} | tee "$OUT/table.md"
	# Warm-up (not reported): fills sendergate's upstream pool, parses keys.
	"$WORK/bin/loadgen" -addr "$sg" -c 8 -per-conn 50 -n 400 "${auth[@]}" -from a@rsa.bench.example >/dev/null
	"$WORK/bin/loadgen" -addr "$sg" -c 8 -per-conn 50 -n 400 "${auth[@]}" -from a@ed.bench.example >/dev/null
	local c
	for c in 1 8 32; do smtp_row "sink direct" "$sink" "$c" 50; done
	smtp_row "sink direct, 1/conn" "$sink" 32 1
	for c in 1 8 32; do smtp_row "sendergate RSA-2048" "$sg" "$c" 50 "${auth[@]}" -from a@rsa.bench.example; done
	smtp_row "sendergate RSA-2048, 1/conn+AUTH" "$sg" 32 1 "${auth[@]}" -from a@rsa.bench.example
	for c in 1 8 32; do smtp_row "sendergate Ed25519" "$sg" "$c" 50 "${auth[@]}" -from a@ed.bench.example; done
	smtp_row "sendergate Ed25519, 1/conn+AUTH" "$sg" 32 1 "${auth[@]}" -from a@ed.bench.example
	# A client that pipelines (RFC 2920) as Postfix does: MAIL RCPT DATA in
	# one write, the message in another.
	smtp_row "sink direct, pipelined" "$sink" 8 50 -pipeline
	smtp_row "sendergate RSA-2048, pipelined" "$sg" 8 50 "${auth[@]}" -from a@rsa.bench.example -pipeline
	smtp_row "sendergate Ed25519, pipelined" "$sg" 8 50 "${auth[@]}" -from a@ed.bench.example -pipeline
}

policy_rows() {
	local addr="127.0.0.1:$POLICYD_PORT" sg0 t0 t1
	{
		echo
		echo "| policy service | conns | window | requests | req/s | µs per request per conn | replies |"
		echo "|---|---|---|---|---|---|---|"
	} | tee -a "$OUT/table.md"
	"$WORK/bin/policyload" -addr "$addr" -user "$USER_NAME" -n 2000 >/dev/null # warm-up
	"$WORK/bin/policyload" -addr "$addr" -user "$USER_NAME" -n "$POLICY_N" -format row \
		-label "pipelined, one connection" | tee -a "$OUT/table.md"
	"$WORK/bin/policyload" -addr "$addr" -user "$USER_NAME" -n $((POLICY_N / 10)) -window 1 -format row \
		-label "lockstep (as Postfix), one connection" | tee -a "$OUT/table.md"
}

# host_speed: the host's own RSA-2048 signing time, the yardstick for
# comparing runs (the same VM has measured 0.20 to 0.29 ms between hours).
host_speed() {
	if ! command -v openssl >/dev/null; then
		echo "openssl speed rsa2048: not measured (no openssl command)"
		return
	fi
	openssl speed -seconds 1 rsa2048 2>/dev/null |
		awk '/^rsa 2048 bits/ {printf "openssl speed rsa2048: %.3f ms per signature\n", $4 * 1000}'
}

main() {
	build
	read -r SINK_PORT CDNS_PORT SUB_PORT ADMIN_PORT ZONE_PORT POLICYD_PORT DEBUG_PORT <<<"$(free_ports 7)"
	start_sink
	start_sendergate
	setup_tenant
	"$WORK/bin/sendergate" version >"$OUT/version.txt"
	log "$(tr '\n' ' ' <"$OUT/version.txt")"
	log "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
	log "sendergate $SUB_PORT, sink $SINK_PORT, policyd $POLICYD_PORT; duration per row $DUR; output in $OUT"
	local before after
	before=$(host_speed)
	log "before the matrix, $before"
	smtp_matrix
	[[ -n "${ROWS:-}" ]] || policy_rows
	after=$(host_speed)
	log "after the matrix, $after"
	printf 'before: %s\nafter: %s\n' "$before" "$after" >"$OUT/host.txt"
	log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [[ "${GOBENCH:-}" == 1 ]]; then
		(cd "$ROOT" && go test -run '^$' -bench . -benchmem ./policy/ ./dkim/ ./smtpd/ ./milter/ ./relay/) | tee "$OUT/gobench.txt"
	fi
	log "table: $OUT/table.md; logs: $OUT/sendergate.log $OUT/sink.log"
}

main "$@"
