// Command seed fills a sendergate database with a synthetic dataset for
// the scale benchmark (bench/scale, docs/PERFORMANCE.md "State at a
// million domains"): -orgs organizations × -domains verified sending
// domains, each organization with its sandbox domain and one SMTP account
// app@ORG whose password is seeddb.Password (predictable: benchmark data
// only, never a database that serves real mail).
//
//	seed -database sqlite:/tmp/sg/sendergate.db -orgs 100000 -domains 10 -alg ed25519
//	seed -database 'postgres://postgres@127.0.0.1:5432/sg_scale?sslmode=disable'
//
// The database is migrated first (the embedded migrations, as serve does)
// and must hold no organization yet. The tool prints how long each stage
// took.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/sendergate/sendergate/bench/internal/seeddb"
	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/dkim"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("seed: ")
	var (
		database = flag.String("database", "", `database as in sendergate.toml: "sqlite:PATH" or "postgres://..." (required)`)
		orgs     = flag.Int("orgs", 100000, "organizations")
		perOrg   = flag.Int("domains", 10, "verified sending domains per organization (besides its sandbox domain)")
		alg      = flag.String("alg", "ed25519", "DKIM algorithm of the sending domains: ed25519 | rsa-2048 (sandbox domains are always rsa-2048)")
		keys     = flag.Int("keys", 8, "distinct keys generated per algorithm and shared across rows")
		zone     = flag.String("zone", "sg.localhost", "dns.zone of the daemon that will serve the data")
		sandbox  = flag.String("sandbox-zone", "", "sandbox.zone (default sandbox.ZONE)")
		interval = flag.Duration("verify-interval", time.Hour, "dns.verify_interval: next checks are spread over one interval from now")
	)
	flag.Parse()
	if *database == "" {
		log.Fatal("-database is required")
	}
	cfg := config.Config{Database: *database}
	driver, dsn, err := cfg.DatabaseDriver()
	if err != nil {
		log.Fatalf("-database: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := seeddb.Seed(ctx, driver, dsn, seeddb.Options{
		Orgs: *orgs, DomainsPerOrg: *perOrg, Algorithm: dkim.Algorithm(*alg), Keys: *keys,
		Zone: *zone, SandboxZone: *sandbox, VerifyInterval: *interval,
		Progress: func(table string, done, total int) {
			log.Printf("%s: %d/%d rows (%.1fs)", table, done, total, time.Since(start).Seconds())
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("seeded %s: %d organizations, %d accounts, %d sending domains (%s) + %d sandbox domains; state version %d\n",
		driver, res.Orgs, res.Accounts, res.Domains, *alg, res.SandboxDomains, res.Version)
	fmt.Printf("took %.1fs: migrate %.1fs, keys %.1fs, insert %.1fs, commit+finish %.1fs\n",
		res.Total.Seconds(), res.Migrate.Seconds(), res.Keys.Seconds(), res.Insert.Seconds(), res.Finish.Seconds())
}
