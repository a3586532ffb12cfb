package seeddb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestSeedServes: a seeded database is what the daemon would have made
// through the API: every account logs in with its seeded password, every
// seeded domain may send for its organization and no other, the provider
// zone holds each domain's DKIM key, and a second seed is refused.
func TestSeedServes(t *testing.T) {
	for _, alg := range []dkim.Algorithm{dkim.Ed25519, dkim.RSA2048} {
		for _, driver := range []string{"sqlite", "postgres"} {
			t.Run(driver+"/"+string(alg), func(t *testing.T) {
				var dsn string
				if driver == "sqlite" {
					dsn = filepath.Join(t.TempDir(), "seed.db")
				} else {
					dsn = storetest.PostgresDSN(t)
				}
				checkSeed(t, driver, dsn, alg)
			})
		}
	}
}

func checkSeed(t *testing.T, driver, dsn string, alg dkim.Algorithm) {
	ctx := context.Background()
	const orgs, per = 3, 5
	res, err := Seed(ctx, driver, dsn, Options{Orgs: orgs, DomainsPerOrg: per, Algorithm: alg, Keys: 2, Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	if res.Orgs != orgs || res.Accounts != orgs || res.Domains != orgs*per || res.SandboxDomains != orgs {
		t.Fatalf("result %+v", res)
	}
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Version(ctx); err != nil || v != res.Version || v < 2 {
		t.Fatalf("state version %d, %v; seed said %d", v, err, res.Version)
	}
	full, err := st.LoadState(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	zoneRows := full.Domains
	e := loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{})
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ := e.Current()
	if o, d := snap.Counts(); o != orgs || d != orgs*(per+1) {
		t.Fatalf("snapshot holds %d orgs, %d domains", o, d)
	}
	for i := range orgs {
		acct, err := snap.Authenticate(Username(i), Password(i))
		if err != nil {
			t.Fatalf("AUTH %s with the seeded password: %v", Username(i), err)
		}
		if _, err := snap.Authenticate(Username(i), Password(i)+"x"); !errors.Is(err, policy.ErrBadCredentials) {
			t.Errorf("AUTH %s with a wrong password: %v", Username(i), err)
		}
		for j := range per {
			if d := snap.Decide(acct, "news@"+DomainName(i, j)); !d.Allowed {
				t.Errorf("%s refused for %s: %s", DomainName(i, j), Username(i), d.Message())
			}
			if d := snap.Decide(acct, "news@"+DomainName((i+1)%orgs, j)); d.Allowed {
				t.Errorf("%s may send as another organization's %s", Username(i), DomainName((i+1)%orgs, j))
			}
		}
		if d := snap.Decide(acct, "news@"+OrgName(i)+".sandbox.sg.localhost"); !d.Allowed {
			t.Errorf("sandbox domain refused: %s", d.Message())
		}
	}
	// The zone: every sending domain's DKIM TXT under its token, of the
	// right key type; the change log is empty.
	kind := "k=" + map[dkim.Algorithm]string{dkim.Ed25519: "ed25519", dkim.RSA2048: "rsa"}[alg]
	tokens := map[string]bool{}
	for _, r := range zoneRows {
		if r.Sandbox {
			continue
		}
		if !strings.Contains(r.DKIMTXT, kind) || r.Selector != Selector || tokens[r.Token] || len(r.Token) < 10 {
			t.Errorf("zone row %s: selector %q token %q txt %.30q", r.Name, r.Selector, r.Token, r.DKIMTXT)
		}
		tokens[r.Token] = true
	}
	// Every sending domain's next key, at the second selector, as a new
	// registration has it (the zone publishes it before it signs).
	next := 0
	for _, k := range full.Keys {
		if k.Selector == domains.SecondSelector(Selector) && strings.Contains(k.TXT, kind) {
			next++
		}
	}
	if next != orgs*per {
		t.Errorf("%d next keys at %s, want %d", next, domains.SecondSelector(Selector), orgs*per)
	}
	if len(tokens) != orgs*per {
		t.Errorf("zone has %d distinct sending-domain tokens, want %d", len(tokens), orgs*per)
	}
	d, err := st.DomainByName(ctx, mustOrg(t, st, 1).ID, DomainName(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != "verified" || !strings.Contains(d.Records, `"status":"ok"`) || d.DMARCPolicy != domains.DMARCQuarantine {
		t.Errorf("domain row %+v", d)
	}
	if due := d.NextCheckAt.Time; due.Before(time.Now().Add(-time.Minute)) || due.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Errorf("next check at %v: not within one verify interval from now", due)
	}
	if _, err := Seed(ctx, driver, dsn, Options{Orgs: 1, DomainsPerOrg: 1, Keys: 1}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second seed: %v, want ErrNotEmpty", err)
	}
}

func mustOrg(t *testing.T, st *store.Store, i int) store.Org {
	t.Helper()
	o, err := st.OrgByName(context.Background(), OrgName(i))
	if err != nil {
		t.Fatal(err)
	}
	return o
}
