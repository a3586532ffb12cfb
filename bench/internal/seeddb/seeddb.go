// Package seeddb fills a sendergate database with a synthetic dataset for
// the scale benchmark (bench/seed, bench/scale): N organizations, each with
// its sandbox domain, one SMTP account whose password follows a known
// pattern, and M verified sending domains with real DKIM keys. A handful of
// keys per algorithm is generated and shared across rows; tokens and ids
// are unique, as the API would make them.
//
// The schema is sendergate's own: the database is migrated through
// store.Open and Store.Migrate first, then the rows are written in bulk
// (PostgreSQL COPY in one transaction; SQLite one transaction of
// multi-row INSERTs with synchronous=OFF), the state version is bumped
// once and the change log left empty, as for a fresh dataset.
//
// The passwords are predictable by design (Password): a seeded database
// is a benchmark fixture and must never serve real mail.
package seeddb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
)

// The names the dataset uses, so that a harness can address any row.
const (
	// AccountName is the one SMTP account of every organization.
	AccountName = "app"
	// Selector is the DKIM selector of every seeded domain.
	Selector = "sg1"
	// ReturnPath is the return-path label of every seeded domain.
	ReturnPath = "mailing"
	// DMARCEvery: every DMARCEvery-th domain of an organization (j %
	// DMARCEvery == 0) publishes DMARC through the provider zone.
	DMARCEvery = 4
)

// OrgName is the name of organization i (0-based).
func OrgName(i int) string { return fmt.Sprintf("o%07d", i) }

// DomainName is the name of domain j (0-based) of organization i.
func DomainName(i, j int) string { return fmt.Sprintf("d%d.%s.bench.example", j, OrgName(i)) }

// Username is the SMTP username of organization i's account.
func Username(i int) string { return AccountName + "@" + OrgName(i) }

// Password is the seeded password of organization i's account (until
// rotated). Predictable on purpose: benchmark data only.
func Password(i int) string { return "seeded-" + OrgName(i) + "-password-0123456789" }

// Options say what to seed.
type Options struct {
	Orgs          int            // organizations; default 100000
	DomainsPerOrg int            // sending domains per organization, besides the sandbox; default 10
	Algorithm     dkim.Algorithm // of the sending domains; sandbox domains are RSA-2048 as the API makes them
	Keys          int            // distinct keys per algorithm, shared across rows; default 8
	// Zone and SandboxZone are dns.zone and sandbox.zone of the daemon
	// that will serve the data (record values and sandbox names use them).
	Zone, SandboxZone string
	// VerifyInterval is dns.verify_interval: every domain was last
	// checked within the last interval and comes due within the next one,
	// spread evenly.
	VerifyInterval time.Duration
	// Batch is the number of rows per INSERT on SQLite; default 100.
	Batch int
	// Progress, when set, is called now and then with the rows written.
	Progress func(table string, done, total int)
	Now      func() time.Time
}

// Result says what was written and how long each stage took.
type Result struct {
	Orgs, Accounts, Domains, SandboxDomains int
	Version                                 int64 // the state version after the bump
	Migrate, Keys, Insert, Finish, Total    time.Duration
}

// ErrNotEmpty is returned when the database already holds organizations.
var ErrNotEmpty = errors.New("seeddb: the database already holds organizations; seed an empty one")

func (o *Options) defaults() error {
	if o.Orgs == 0 {
		o.Orgs = 100000
	}
	if o.DomainsPerOrg == 0 {
		o.DomainsPerOrg = 10
	}
	if o.Algorithm == "" {
		o.Algorithm = dkim.Ed25519
	}
	if !o.Algorithm.Valid() {
		return fmt.Errorf("seeddb: unknown algorithm %q (want rsa-2048 or ed25519)", o.Algorithm)
	}
	if o.Keys <= 0 {
		o.Keys = 8
	}
	if o.Zone == "" {
		o.Zone = "sg.localhost"
	}
	if o.SandboxZone == "" {
		o.SandboxZone = "sandbox." + o.Zone
	}
	if o.VerifyInterval <= 0 {
		o.VerifyInterval = time.Hour
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = func(string, int, int) {}
	}
	if o.Orgs < 0 || o.DomainsPerOrg < 0 {
		return errors.New("seeddb: negative counts")
	}
	return nil
}

// keyPair is a generated key as the rows store it.
type keyPair struct{ pem, txt string }

func genKeys(alg dkim.Algorithm, n int) ([]keyPair, error) {
	out := make([]keyPair, n)
	for i := range out {
		k, err := dkim.GenerateKey(alg)
		if err != nil {
			return nil, fmt.Errorf("seeddb: generate %s key: %w", alg, err)
		}
		pemText, err := dkim.MarshalPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("seeddb: marshal %s key: %w", alg, err)
		}
		txt, err := dkim.TXTValue(k.Public())
		if err != nil {
			return nil, fmt.Errorf("seeddb: %s key TXT: %w", alg, err)
		}
		out[i] = keyPair{pem: pemText, txt: txt}
	}
	return out, nil
}

// Seed migrates the database (driver "sqlite" or "postgres", dsn as
// store.Open takes it) and fills it. The database must hold no
// organization yet.
func Seed(ctx context.Context, driver, dsn string, o Options) (Result, error) {
	var res Result
	if err := o.defaults(); err != nil {
		return res, err
	}
	start := time.Now()
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		return res, err
	}
	_, err = st.Migrate(ctx)
	st.Close()
	if err != nil {
		return res, err
	}
	res.Migrate = time.Since(start)

	t := time.Now()
	sandboxKeys, err := genKeys(dkim.RSA2048, o.Keys)
	if err != nil {
		return res, err
	}
	domainKeys := sandboxKeys
	if o.Algorithm != dkim.RSA2048 {
		if domainKeys, err = genKeys(o.Algorithm, o.Keys); err != nil {
			return res, err
		}
	}
	res.Keys = time.Since(t)

	w, err := openWriter(ctx, driver, dsn)
	if err != nil {
		return res, err
	}
	defer w.close()
	g := newGen(o, sandboxKeys, domainKeys)
	t = time.Now()
	if err := g.write(ctx, w, &res); err != nil {
		return res, err
	}
	res.Insert = time.Since(t)
	t = time.Now()
	if res.Version, err = w.finish(ctx); err != nil {
		return res, err
	}
	res.Finish = time.Since(t)
	res.Total = time.Since(start)
	return res, nil
}

// gen makes the rows, deterministically but for ids and tokens.
type gen struct {
	o                       Options
	sandboxKeys, domainKeys []keyPair
	now                     time.Time
	orgIDs                  []string
	rnd                     *rand.Rand
	keys                    []seededKey // written after the domains
}

func newGen(o Options, sandboxKeys, domainKeys []keyPair) *gen {
	now := o.Now().UTC().Truncate(time.Millisecond)
	g := &gen{o: o, sandboxKeys: sandboxKeys, domainKeys: domainKeys, now: now,
		orgIDs: make([]string, o.Orgs), rnd: rand.New(rand.NewPCG(1, 2))}
	for i := range g.orgIDs {
		g.orgIDs[i] = store.NewID()
	}
	return g
}

var (
	orgCols     = []string{"id", "name", "sandbox_domain", "created_at"}
	accountCols = []string{"id", "org_id", "name", "username", "password_hash", "created_at", "updated_at"}
	domainCols  = []string{"id", "org_id", "name", "sandbox", "token", "status", "return_path", "tracking",
		"dkim_selector", "dkim_algorithm", "dkim_key", "dkim_txt", "dmarc_policy", "dmarc_rua", "dmarc_pct", "restricted",
		"records", "history", "created_at", "verified_at", "last_checked_at", "first_miss_at", "next_check_at"}
	keyCols = []string{"id", "domain_id", "selector", "algorithm", "private_key", "txt", "state", "byok", "created_at", "activated_at"}
)

// seededKey is a dkim_keys row to write once the domains are in.
type seededKey struct {
	domainID, selector string
	alg                dkim.Algorithm
	k                  keyPair
	state              string
	created            int64
}

func (g *gen) write(ctx context.Context, w writer, res *Result) error {
	o := g.o
	created := g.now.Add(-30 * 24 * time.Hour).UnixMilli()
	err := w.copy(ctx, "orgs", orgCols, func(emit func(...any) error) error {
		for i, id := range g.orgIDs {
			if err := emit(id, OrgName(i), OrgName(i)+"."+o.SandboxZone, created); err != nil {
				return err
			}
			res.Orgs++
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.Progress("orgs", res.Orgs, o.Orgs)
	err = w.copy(ctx, "smtp_accounts", accountCols, func(emit func(...any) error) error {
		for i, id := range g.orgIDs {
			if err := emit(store.NewID(), id, AccountName, Username(i), policy.HashPassword(Password(i)), created, created); err != nil {
				return err
			}
			res.Accounts++
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.Progress("smtp_accounts", res.Accounts, o.Orgs)
	total := o.Orgs * (o.DomainsPerOrg + 1)
	err = w.copy(ctx, "domains", domainCols, func(emit func(...any) error) error {
		for i, orgID := range g.orgIDs {
			k := g.sandboxKeys[i%len(g.sandboxKeys)]
			sbID := store.NewID()
			g.keys = append(g.keys, seededKey{domainID: sbID, selector: "sg1", alg: dkim.RSA2048, k: k, state: store.KeyActive, created: created})
			if err := emit(sbID, orgID, OrgName(i)+"."+o.SandboxZone, true, domains.NewToken(), "verified", "", "",
				"sg1", string(dkim.RSA2048), k.pem, k.txt, "", "", 0, false,
				"[]", "", created, created, nil, nil, nil); err != nil {
				return err
			}
			res.SandboxDomains++
			for j := range o.DomainsPerOrg {
				if err := g.domain(emit, i, j, orgID, created); err != nil {
					return err
				}
				res.Domains++
			}
			if done := res.Domains + res.SandboxDomains; done%100000 < o.DomainsPerOrg+1 {
				o.Progress("domains", done, total)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Each domain's keys as a registration makes them: the active key
	// (mirrored in domains.dkim_*) and, for a sending domain, the next key
	// at the second selector, which the zone publishes before it signs.
	n := 0
	return w.copy(ctx, "dkim_keys", keyCols, func(emit func(...any) error) error {
		for _, k := range g.keys {
			if err := emit(store.NewID(), k.domainID, k.selector, string(k.alg), k.k.pem, k.k.txt, k.state, false, k.created, k.created); err != nil {
				return err
			}
			if n++; n%200000 == 0 {
				o.Progress("dkim_keys", n, len(g.keys))
			}
		}
		g.keys = nil
		return nil
	})
}

// domain emits sending domain j of organization i: verified, last checked
// within the last verify interval, next check one interval later.
func (g *gen) domain(emit func(...any) error, i, j int, orgID string, created int64) error {
	o := g.o
	in := domains.Input{Name: DomainName(i, j), ReturnPath: ReturnPath, DKIMSelector: Selector, DKIMAlgorithm: string(o.Algorithm)}
	var dmarcPolicy, dmarcRUA string
	var dmarcPct int
	if j%DMARCEvery == 0 {
		dmarcPolicy, dmarcRUA, dmarcPct = domains.DMARCQuarantine, "mailto:dmarc@"+in.Name, domains.DefaultDMARCPct
		in.DMARC = &domains.DMARC{Policy: dmarcPolicy, RUA: dmarcRUA, Pct: dmarcPct}
	}
	token := domains.NewToken()
	recs := domains.Records(in, token, o.Zone)
	for r := range recs {
		recs[r].Status, recs[r].Found = domains.StatusOK, recs[r].Value
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	interval := o.VerifyInterval.Milliseconds()
	last := g.now.UnixMilli() - g.rnd.Int64N(interval)
	idx := i*o.DomainsPerOrg + j
	k := g.domainKeys[idx%len(g.domainKeys)]
	id := store.NewID()
	g.keys = append(g.keys,
		seededKey{domainID: id, selector: Selector, alg: o.Algorithm, k: k, state: store.KeyActive, created: created},
		seededKey{domainID: id, selector: domains.SecondSelector(Selector), alg: o.Algorithm, k: g.domainKeys[(idx+1)%len(g.domainKeys)],
			state: store.KeyNext, created: created})
	return emit(id, orgID, in.Name, false, token, "verified", ReturnPath, "",
		Selector, string(o.Algorithm), k.pem, k.txt, dmarcPolicy, dmarcRUA, dmarcPct, false,
		string(b), "ooo", created, created+60_000, last, nil, last+interval)
}
