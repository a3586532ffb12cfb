package policy

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

// Source is what the engine reads snapshots from (the store).
type Source interface {
	Version(ctx context.Context) (int64, error)
	ListOrgs(ctx context.Context) ([]store.Org, error)
	AllAccounts(ctx context.Context) ([]store.Account, error)
	AllDomains(ctx context.Context) ([]store.Domain, error)
	AllGrants(ctx context.Context) ([]store.Grant, error)
	ConfirmedAddresses(ctx context.Context) ([]store.Address, error)
}

// Options configure an Engine.
type Options struct {
	Zone             string // provider zone, for T.bounce.ZONE
	RequireConfirmed bool   // submission.require_confirmed_address
	Poll             time.Duration
	Logger           *slog.Logger
	Now              func() time.Time
	// OnReload, when set, is called after each successful rebuild with the
	// snapshot and the domains it was built from (the DNS zone is built
	// from the same rows, so it needs no second query).
	OnReload func(*Snapshot, []store.Domain)
}

// Engine holds the current snapshot and keeps it fresh.
type Engine struct {
	src     Source
	opts    Options
	cur     atomic.Pointer[Snapshot]
	mu      sync.Mutex // serializes rebuilds
	keys    map[string]crypto.Signer
}

// NewEngine returns an engine with no snapshot: call Reload or Run.
func NewEngine(src Source, opts Options) *Engine {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{src: src, opts: opts, keys: map[string]crypto.Signer{}}
}

// Current returns the current snapshot, or ErrNotReady.
func (e *Engine) Current() (*Snapshot, error) {
	s := e.cur.Load()
	if s == nil {
		return nil, ErrNotReady
	}
	return s, nil
}

// Reload rebuilds the snapshot now, whatever the version says.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rebuild(ctx)
}

// Run polls the store's state version every Options.Poll and rebuilds when it
// changed, until ctx is done. A change made by another process sharing the
// database is therefore enforced within one poll interval.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		if err := e.refresh(ctx); err != nil && ctx.Err() == nil {
			e.opts.Logger.Error("policy snapshot refresh failed; keeping the previous one", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) refresh(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.src.Version(ctx)
	if err != nil {
		return err
	}
	if cur := e.cur.Load(); cur != nil && cur.version == v {
		return nil
	}
	return e.rebuild(ctx)
}

// rebuild loads everything and swaps the snapshot in. Parsed keys are kept
// across rebuilds (keyed by a hash of their PEM), so a rebuild parses only
// new keys.
func (e *Engine) rebuild(ctx context.Context) error {
	start := time.Now()
	v, err := e.src.Version(ctx)
	if err != nil {
		return err
	}
	orgs, err := e.src.ListOrgs(ctx)
	if err != nil {
		return err
	}
	accts, err := e.src.AllAccounts(ctx)
	if err != nil {
		return err
	}
	doms, err := e.src.AllDomains(ctx)
	if err != nil {
		return err
	}
	grants, err := e.src.AllGrants(ctx)
	if err != nil {
		return err
	}
	addrs, err := e.src.ConfirmedAddresses(ctx)
	if err != nil {
		return err
	}
	s := &Snapshot{
		version: v, built: e.opts.Now(), requireConfirmed: e.opts.RequireConfirmed,
		accounts:  make(map[string]*Account, len(accts)),
		domains:   make(map[domainKey]*Domain, len(doms)),
		byID:      make(map[string]*Domain, len(doms)),
		confirmed: make(map[domainKey]struct{}, len(addrs)),
	}
	orgNames := make(map[string]string, len(orgs))
	for _, o := range orgs {
		orgNames[o.ID] = o.Name
	}
	for _, a := range accts {
		acct := &Account{ID: a.ID, OrgID: a.OrgID, Org: orgNames[a.OrgID], Name: a.Name, Username: a.Username}
		if _, err := hex.Decode(acct.hash[:], []byte(a.PasswordHash)); err != nil {
			e.opts.Logger.Error("account has an unreadable password hash; it cannot log in", "account", a.Username)
			continue
		}
		s.accounts[a.Username] = acct
	}
	keys := make(map[string]crypto.Signer, len(doms))
	for _, d := range doms {
		sum := sha256.Sum256([]byte(d.DKIMKey))
		kid := string(sum[:])
		key, ok := e.keys[kid]
		if !ok {
			key, err = dkim.ParsePrivateKey(d.DKIMKey)
			if err != nil {
				e.opts.Logger.Error("domain has an unreadable DKIM key; it cannot send", "domain", d.Name, "err", err)
				continue
			}
		}
		keys[kid] = key
		dom := &Domain{ID: d.ID, OrgID: d.OrgID, Name: d.Name, Status: d.Status, Sandbox: d.Sandbox, Restricted: d.Restricted,
			Selector: d.DKIMSelector, Key: key, BounceDomain: BounceDomain(d, e.opts.Zone), grants: map[string]struct{}{}}
		s.domains[domainKey{d.OrgID, d.Name}] = dom
		s.byID[d.ID] = dom
	}
	for _, g := range grants {
		if d, ok := s.byID[g.DomainID]; ok {
			d.grants[g.AccountID] = struct{}{}
		}
	}
	for _, a := range addrs {
		s.confirmed[domainKey{a.OrgID, strings.ToLower(a.Email)}] = struct{}{}
	}
	e.keys = keys
	e.cur.Store(s)
	e.opts.Logger.Debug("policy snapshot rebuilt", "version", v, "accounts", len(s.accounts), "domains", len(s.domains), "took", time.Since(start))
	if e.opts.OnReload != nil {
		e.opts.OnReload(s, doms)
	}
	return nil
}

// BounceDomain is the domain of d's rewritten envelope sender: LABEL.D with
// a return-path label, else T.bounce.ZONE.
func BounceDomain(d store.Domain, zone string) string {
	if d.ReturnPath != "" {
		return d.ReturnPath + "." + d.Name
	}
	return d.Token + ".bounce." + zone
}

// Lookup returns the account for a username on the current snapshot, for
// adapters where the MTA has authenticated the client.
func (e *Engine) Lookup(username string) (*Account, error) {
	s, err := e.Current()
	if err != nil {
		return nil, err
	}
	a, ok := s.Account(username)
	if !ok {
		return nil, fmt.Errorf("policy: unknown account %q", username)
	}
	return a, nil
}
