package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/internal/demodns"
	"github.com/sendergate/sendergate/store"
)

// DefaultDemoDNS is where `serve -demo` runs its customer DNS.
const DefaultDemoDNS = "127.0.0.1:5354"

// demoOverrides is the file, in data_dir, whose records replace what the
// demo's customer DNS publishes (to break a record and see the hints).
const demoOverrides = "demo-dns.zone"

// demoMode is `serve -demo`: the local trial. Next to the daemon runs a
// customer DNS on loopback (package demodns) that publishes every added
// domain's records at once and forwards dns.zone to the daemon's own zone
// server; dns.resolvers points at it, so verification and DKIM checks
// work with nothing published anywhere. Accepted mail goes to the outbox
// (or a loopback relay.upstream). Every listener must be on loopback.
type demoMode struct {
	on   bool
	addr string
}

// demoFlags adds -demo and -demo-dns to the serve flags (nothing for
// other commands).
func demoFlags(fs *flag.FlagSet, cmd string) *demoMode {
	d := &demoMode{}
	if cmd == "serve" {
		fs.BoolVar(&d.on, "demo", false, "local trial: a customer DNS on loopback publishes every added domain's records (see README)")
		fs.StringVar(&d.addr, "demo-dns", DefaultDemoDNS, "with -demo: where the customer DNS listens (UDP and TCP, loopback only)")
	}
	return d
}

// start checks that cfg stays on loopback, starts the customer DNS and
// points cfg's dns.resolvers at it. The returned function stops it.
func (d *demoMode) start(cfg *config.Config, logger *slog.Logger) (func(), error) {
	if err := demoLoopback(*cfg); err != nil {
		return nil, err
	}
	if _, port, _ := net.SplitHostPort(cfg.DNS.Listen); port == "0" {
		return nil, errors.New("-demo forwards dns.zone to dns.listen: give dns.listen a fixed port")
	}
	driver, dsn, err := cfg.DatabaseDriver()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Its own handle on the database: the customer DNS reads the domains,
	// it never queues behind the daemon's writes.
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("-demo: %w", err)
	}
	overrides := filepath.Join(cfg.DataDir, demoOverrides)
	srv, err := demodns.Start(demodns.Config{Addr: d.addr, Source: storeRecords(st), Zone: cfg.DNS.Zone,
		ZoneServer: dialable(cfg.DNS.Listen), Overrides: overrides, Logger: logger})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("-demo-dns: %w", err)
	}
	cfg.DNS.Resolvers = []string{srv.Addr()}
	upstream := "the outbox " + filepath.Join(cfg.DataDir, "outbox")
	if cfg.Relay.Upstream != "" {
		upstream = cfg.Relay.Upstream
	}
	logger.Info("demo mode: a customer DNS on loopback publishes every added domain's records and forwards the provider zone; nothing leaves this machine",
		"customer_dns", srv.Addr(), "forwards", cfg.DNS.Zone+" to "+dialable(cfg.DNS.Listen), "overrides", overrides, "mail_to", upstream)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		st.Close()
	}, nil
}

// demoLoopback refuses a demo whose listeners or upstream are reachable
// from elsewhere: the trial answers DNS for any name and signs for any
// domain added to it.
func demoLoopback(cfg config.Config) error {
	var bad []string
	for key, addr := range map[string]string{
		"submission.listen": cfg.Submission.Listen, "submission.listen_tls": cfg.Submission.ListenTLS,
		"admin.listen": cfg.Admin.Listen, "dns.listen": cfg.DNS.Listen, "relay.upstream": cfg.Relay.Upstream,
		"milter.listen": cfg.Milter.Listen, "policyd.listen": cfg.Policyd.Listen, "bounce.listen": cfg.Bounce.Listen,
	} {
		if addr == "" || strings.HasPrefix(addr, "unix:") {
			continue
		}
		if err := demodns.CheckLoopback(addr); err != nil {
			bad = append(bad, fmt.Sprintf("%s %q", key, addr))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("-demo runs on loopback only; not on loopback: %s", strings.Join(bad, ", "))
	}
	return nil
}

// storeRecords lists the CNAMEs every domain in st publishes.
func storeRecords(st *store.Store) demodns.Source {
	return demodns.SourceFunc(func(ctx context.Context) ([]demodns.Record, error) {
		ds, err := st.AllDomains(ctx)
		if err != nil {
			return nil, err
		}
		var out []demodns.Record
		for _, d := range ds {
			var recs []domains.Record
			if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
				return nil, fmt.Errorf("domain %s: records: %w", d.Name, err)
			}
			for _, r := range recs {
				out = append(out, demodns.Record{Host: r.Host, Type: r.Type, Value: r.Value + "."})
			}
		}
		return out, nil
	})
}
