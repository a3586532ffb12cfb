#!/usr/bin/env bash
# bench/scale/run.sh: sendergate at a million domains (docs/PERFORMANCE.md,
# "State at a million domains").
#
# Builds sendergate, bench/seed, bench/scale and bench/snapshot from commit
# SG_REV (git archive, so that edits in progress in the working tree are
# not measured); creates a fresh database (SQLite file
# or PostgreSQL database sg_scale_PID), seeds ORGS × DOMAINS verified
# domains, runs the in-process snapshot benchmark and the daemon harness,
# and removes the database at the end (KEEP=1 keeps it). Everything is on
# loopback. Run from anywhere:
#
#   DB=sqlite bench/scale/run.sh
#   DB=postgres ORGS=100000 DOMAINS=10 ALG=ed25519 bench/scale/run.sh
#
# Environment:
#   DB=sqlite|postgres   database (PostgreSQL at PGURL, trust auth)
#   PGURL=postgres://postgres@127.0.0.1:5432   server for DB=postgres
#   ORGS=100000 DOMAINS=10 ALG=ed25519|rsa-2048   dataset
#   SG_REV=HEAD          commit to build sendergate from; SG_BIN=PATH uses a binary
#   SECOND=1             second instance on the same database (propagation);
#                        default 1 for postgres, 0 for sqlite
#   SNAPSHOT=1           run bench/snapshot (in-process load, decision, AUTH)
#   SNAPSHOT_FLAGS="..." extra flags for bench/snapshot (e.g. -writes 5)
#   VERIFY_INTERVAL=1h   dns.verify_interval, seeded and configured (720h:
#                        almost no background check comes due)
#   SCALE_FLAGS="..."    extra flags for bench/scale (e.g. -adds 2000 -idle 10s)
#   DATA=DIR             where the database and data dirs go (default /tmp)
#   OUT=DIR              report and logs (default a new /tmp/sendergate-scale-out.* dir, kept)
#   KEEP=1               keep the seeded database
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DB=${DB:-sqlite}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
ORGS=${ORGS:-100000}
DOMAINS=${DOMAINS:-10}
ALG=${ALG:-ed25519}
VERIFY_INTERVAL=${VERIFY_INTERVAL:-1h}
SG_REV=${SG_REV:-HEAD}
SNAPSHOT=${SNAPSHOT:-1}
if [[ "$DB" == postgres ]]; then SECOND=${SECOND:-1}; else SECOND=${SECOND:-0}; fi
DATA=${DATA:-/tmp}
OUT=${OUT:-$(mktemp -d /tmp/sendergate-scale-out.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d "$DATA/sendergate-scale.XXXXXX")
PGDB=sg_scale_$$

log() { printf '%s\n' "$*" >&2; }

cleanup() {
	if [[ "${KEEP:-0}" != 1 ]]; then
		if [[ "$DB" == postgres ]]; then
			dropdb --if-exists -h 127.0.0.1 -U postgres "$PGDB" 2>/dev/null || true
		fi
		rm -rf "$WORK"
	else
		log "kept: $WORK ${DB/postgres/and database $PGDB}"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/bin" "$WORK/src"
REV=$(git -C "$ROOT" rev-parse --short "$SG_REV")
git -C "$ROOT" archive "$REV" | tar -x -C "$WORK/src"
if [[ ! -d "$WORK/src/bench/scale" ]]; then
	# A commit older than the scale tools: they come from this tree.
	(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/seed ./bench/scale ./bench/snapshot)
else
	(cd "$WORK/src" && go build -o "$WORK/bin/" ./bench/seed ./bench/scale ./bench/snapshot)
fi
if [[ -n "${SG_BIN:-}" ]]; then
	cp "$SG_BIN" "$WORK/bin/sendergate"
	REV="$REV (binary $SG_BIN)"
else
	(cd "$WORK/src" && go build -o "$WORK/bin/sendergate" ./cmd/sendergate)
fi

case "$DB" in
sqlite) DATABASE="sqlite:$WORK/db/sendergate.db" ;;
postgres)
	createdb -h 127.0.0.1 -U postgres "$PGDB"
	DATABASE="$PGURL/$PGDB?sslmode=disable"
	;;
*) log "DB must be sqlite or postgres"; exit 2 ;;
esac

{
	echo "# sendergate scale run $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "sendergate commit $REV; $DB; $ORGS orgs × $DOMAINS domains, $ALG; verify_interval $VERIFY_INTERVAL"
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/report.md"

log "seeding $DATABASE"
"$WORK/bin/seed" -database "$DATABASE" -orgs "$ORGS" -domains "$DOMAINS" -alg "$ALG" -verify-interval "$VERIFY_INTERVAL" 2>"$OUT/seed.log" | tee -a "$OUT/report.md"
if [[ "$DB" == sqlite ]]; then
	echo "database file: $(du -sh "$WORK/db" | cut -f1)" | tee -a "$OUT/report.md"
else
	echo "database size: $(psql -h 127.0.0.1 -U postgres -tAc "select pg_size_pretty(pg_database_size('$PGDB'))")" | tee -a "$OUT/report.md"
fi

if [[ "$SNAPSHOT" == 1 ]]; then
	log "in-process snapshot benchmark"
	# shellcheck disable=SC2086
	"$WORK/bin/snapshot" -database "$DATABASE" -orgs "$ORGS" -domains "$DOMAINS" \
		-cpuprofile "$OUT/load.pprof" -memprofile "$OUT/heap.pprof" ${SNAPSHOT_FLAGS:-} 2>"$OUT/snapshot.log" | tee -a "$OUT/report.md"
fi

second=()
[[ "$SECOND" == 1 ]] && second=(-second)
log "daemon harness"
# shellcheck disable=SC2086
"$WORK/bin/scale" -bin "$WORK/bin/sendergate" -database "$DATABASE" -orgs "$ORGS" -domains "$DOMAINS" \
	-verify-interval "$VERIFY_INTERVAL" -work "$WORK/run" -json "$OUT/report.json" "${second[@]}" ${SCALE_FLAGS:-} 2> >(tee "$OUT/scale.log" >&2) | tee -a "$OUT/report.md"
for f in "$WORK"/run/*/sendergate.log; do cp "$f" "$OUT/sendergate-$(basename "$(dirname "$f")").log"; done 2>/dev/null || true
log "report: $OUT/report.md"
