package policy

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OrgInput is one organization's data, as a loader reads it: the policy's
// own input types, so that this package depends on no storage layer.
type OrgInput struct {
	ID, Name  string
	Accounts  []AccountInput
	Domains   []DomainInput
	Confirmed []string // confirmed sender addresses
	Limits    *Limits  // sending limits set for the organization; nil: the defaults
}

// AccountInput is an SMTP account.
type AccountInput struct {
	ID, Name, Username string
	PasswordHash       string // hex SHA-256 (HashPassword)
	Created            time.Time
	Limits             *Limits // sending limits set for the account; nil: the defaults
}

// DomainInput is a sending domain.
type DomainInput struct {
	ID, Name, Status    string
	Sandbox, Restricted bool
	Selector            string
	BounceDomain        string   // return-path domain, or T.bounce.ZONE
	Grants              []string // account ids, when Restricted
	// KeyID names the domain's key (e.g. a hash of its public key): a
	// parsed key is cached under it, so a change of the domain's
	// organization does not drop a key that stayed the same.
	KeyID string
	// KeyPEM, when set, is the private key, parsed at once into the cache
	// (a loader sets it for domains added or changed after start, so that
	// signing them does not depend on a later read of the database).
	KeyPEM string
}

// Delta is what changed since a version: every organization (Full) or the
// organizations listed in Changed, whose data is in Orgs (a changed id
// without data was removed).
type Delta struct {
	Version int64
	Full    bool
	Changed []string
	Orgs    []OrgInput
}

// Source is where the engine reads its input from (a loader over the
// store).
type Source interface {
	// Version is the current state version, polled.
	Version(ctx context.Context) (int64, error)
	// Load reads what changed since version since (everything when since
	// is 0) in one consistent read.
	Load(ctx context.Context, since int64) (*Delta, error)
}

// KeySource reads a domain's PEM private key when it is first needed.
type KeySource interface {
	DomainKey(ctx context.Context, domainID string) (string, error)
}

// KeyParser parses a PEM private key (dkim.ParsePrivateKey).
type KeyParser func(pemText string) (crypto.Signer, error)

// Options configure an Engine.
type Options struct {
	RequireConfirmed bool          // submission.require_confirmed_address
	Poll             time.Duration // how often the state version is read (default 250 ms)
	// Keys and ParseKey load private keys on first use; KeyCache bounds
	// how many parsed keys are kept (least recently used go first), so
	// memory follows the active senders, not the number of domains.
	// Default 10,000.
	Keys     KeySource
	ParseKey KeyParser
	KeyCache int
	Logger   *slog.Logger
	Now      func() time.Time
}

// Engine holds the current snapshot and keeps it fresh: each change is
// applied to a copy of the snapshot that shares every organization's view
// but the changed ones, and swapped in atomically.
type Engine struct {
	src  Source
	opts Options
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex // serializes loads
	keys *keyCache

	// current is when the snapshot was last known current (unix ns): a
	// load, or a poll that found nothing changed.
	current atomic.Int64
}

// NewEngine returns an engine with no snapshot: call Reload or Run.
func NewEngine(src Source, opts Options) *Engine {
	if opts.Poll <= 0 {
		// A quarter second: a change on another instance applies here
		// within the 1 s the state design promises, with room for the
		// refresh itself (one indexed row is read per poll).
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KeyCache <= 0 {
		opts.KeyCache = 10000
	}
	return &Engine{src: src, opts: opts, keys: newKeyCache(opts.KeyCache)}
}

// Current returns the current snapshot, or ErrNotReady.
func (e *Engine) Current() (*Snapshot, error) {
	s := e.cur.Load()
	if s == nil {
		return nil, ErrNotReady
	}
	return s, nil
}

// LastCurrent is when the snapshot was last known to be current: its load,
// or the last poll of the state version that found nothing changed (zero
// before the first load). Unlike the snapshot's age it does not grow while
// nothing changes, so an alert on it means the data could not be read.
func (e *Engine) LastCurrent() time.Time {
	if ns := e.current.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Reload loads everything now, whatever the version says.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apply(ctx, 0)
}

// Refresh applies what changed since the current snapshot; a write made
// in this process calls it before answering, so the next transaction here
// sees the change. Concurrent calls coalesce: a caller that waited while
// another applied its change finds nothing left to do.
func (e *Engine) Refresh(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refresh(ctx)
}

// Changed is Refresh for a caller that has just committed a change: when
// no other load is under way it reads the change at once, without first
// reading the state version (one round trip to the database less per
// admin write). A caller that had to wait for another load refreshes as
// Refresh does, since that load may have applied its change already.
func (e *Engine) Changed(ctx context.Context) error {
	if !e.mu.TryLock() {
		return e.Refresh(ctx)
	}
	defer e.mu.Unlock()
	var since int64
	if cur := e.cur.Load(); cur != nil {
		since = cur.version
	}
	return e.apply(ctx, since)
}

// refresh is Refresh with e.mu held.
func (e *Engine) refresh(ctx context.Context) error {
	var since int64
	if cur := e.cur.Load(); cur != nil {
		since = cur.version
		v, err := e.src.Version(ctx)
		if err != nil {
			return err
		}
		if v == since {
			e.current.Store(e.opts.Now().UnixNano())
			return nil
		}
	}
	return e.apply(ctx, since)
}

// Run polls the store's state version every Options.Poll and applies
// changes, until ctx is done. A change made by another process sharing the
// database is therefore enforced within one poll interval.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		if err := e.Refresh(ctx); err != nil && ctx.Err() == nil {
			e.opts.Logger.Error("policy snapshot refresh failed; keeping the previous one", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apply loads the delta since since and swaps in the new snapshot.
func (e *Engine) apply(ctx context.Context, since int64) error {
	start := time.Now()
	delta, err := e.src.Load(ctx, since)
	if err != nil {
		return err
	}
	prev := e.cur.Load()
	if !delta.Full && prev != nil && delta.Version == prev.version {
		e.current.Store(e.opts.Now().UnixNano())
		return nil
	}
	s := &Snapshot{version: delta.Version, built: e.opts.Now(), requireConfirmed: e.opts.RequireConfirmed}
	// The indexes are copied shard by shard as they are written: a change
	// of a few organizations copies a few small maps, not the whole index.
	var byID, byName *indexWriter
	if delta.Full || prev == nil {
		byID, byName = edit(nil), edit(nil)
		e.keys.clear()
	} else {
		byID, byName, s.domains = edit(prev.orgs), edit(prev.byName), prev.domains
		for _, id := range delta.Changed {
			if old, ok := prev.orgs.get(id); ok {
				byID.del(id)
				byName.del(old.name)
				s.domains -= len(old.domains)
			}
		}
	}
	var slab *domainSlab // a full load's domains fill whole chunks
	if delta.Full || prev == nil {
		slab = new(domainSlab)
	}
	for i := range delta.Orgs {
		o := e.build(&delta.Orgs[i], slab)
		byID.put(o.id, o)
		byName.put(o.name, o)
		s.domains += len(o.domains)
	}
	s.orgs, s.byName = byID.x, byName.x
	e.cur.Store(s)
	e.current.Store(e.opts.Now().UnixNano())
	e.opts.Logger.Debug("policy snapshot applied", "version", s.version, "full", delta.Full || prev == nil,
		"orgs_changed", len(delta.Orgs), "orgs", s.orgs.len(), "domains", s.domains, "took", time.Since(start))
	return nil
}

// domainSlab hands out Domains from chunks: a full load's million of
// them, allocated one by one among the load's garbage, ended up on
// half-empty pages of the heap. A chunk lives as long as any of its
// domains, so a slab is for a full load.
type domainSlab struct {
	free []Domain
}

// next returns a zero Domain (of its own allocation for a nil slab).
func (s *domainSlab) next() *Domain {
	if s == nil {
		return new(Domain)
	}
	if len(s.free) == 0 {
		s.free = make([]Domain, 4096)
	}
	d := &s.free[0]
	s.free = s.free[1:]
	return d
}

// build makes one organization's view, its domains from slab.
func (e *Engine) build(in *OrgInput, slab *domainSlab) *orgView {
	o := &orgView{id: in.ID, name: in.Name, limits: in.Limits,
		accounts: make([]*Account, 0, len(in.Accounts)),
		domains:  make([]*Domain, 0, len(in.Domains)),
	}
	for _, a := range in.Accounts {
		acct := &Account{ID: a.ID, OrgID: in.ID, Org: in.Name, Name: a.Name, Username: a.Username, Created: a.Created, Limits: a.Limits}
		if _, err := hex.Decode(acct.hash[:], []byte(a.PasswordHash)); err != nil || len(a.PasswordHash) != 2*len(acct.hash) {
			e.opts.Logger.Error("account has an unreadable password hash; it cannot log in", "account", a.Username)
			continue
		}
		o.accounts = append(o.accounts, acct)
	}
	for _, d := range in.Domains {
		dom := slab.next()
		*dom = Domain{ID: d.ID, Name: d.Name, Status: d.Status, Sandbox: d.Sandbox, Restricted: d.Restricted,
			Selector: d.Selector, BounceDomain: d.BounceDomain, keyID: d.KeyID}
		if dom.keyID == "" {
			dom.keyID = d.ID
		}
		if d.KeyPEM != "" && e.opts.ParseKey != nil {
			if _, ok := e.keys.get(dom.keyID); !ok {
				if k, err := e.opts.ParseKey(d.KeyPEM); err != nil {
					e.opts.Logger.Error("domain has an unreadable DKIM key; it cannot send", "domain", d.Name, "err", err)
				} else {
					e.keys.put(dom.keyID, k)
				}
			}
		}
		if len(d.Grants) > 0 {
			dom.grants = make(map[string]struct{}, len(d.Grants))
			for _, g := range d.Grants {
				dom.grants[g] = struct{}{}
			}
		}
		o.domains = append(o.domains, dom)
	}
	slices.SortFunc(o.accounts, func(a, b *Account) int { return strings.Compare(a.Username, b.Username) })
	o.accounts = slices.CompactFunc(o.accounts, func(a, b *Account) bool { return a.Username == b.Username })
	slices.SortFunc(o.domains, func(a, b *Domain) int { return strings.Compare(a.Name, b.Name) })
	o.domains = slices.CompactFunc(o.domains, func(a, b *Domain) bool { return a.Name == b.Name })
	if len(in.Confirmed) > 0 {
		o.confirmed = make([]string, 0, 2*len(in.Confirmed))
		for _, a := range in.Confirmed {
			o.confirmed = append(o.confirmed, a)
			if l := strings.ToLower(a); l != a {
				o.confirmed = append(o.confirmed, l)
			}
		}
		slices.Sort(o.confirmed)
		o.confirmed = slices.Compact(o.confirmed)
	}
	return o
}

// Signer returns the private key to sign as d, parsed on first use and
// kept in a bounded cache. A key that cannot be read is an error (the
// caller answers 451: fail closed, never an unsigned message).
func (e *Engine) Signer(ctx context.Context, d *Domain) (crypto.Signer, error) {
	if k, ok := e.keys.get(d.keyID); ok {
		return k, nil
	}
	if e.opts.Keys == nil || e.opts.ParseKey == nil {
		return nil, errors.New("policy: no key source configured")
	}
	pemText, err := e.opts.Keys.DomainKey(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("policy: read the DKIM key of %s: %w", d.Name, err)
	}
	k, err := e.opts.ParseKey(pemText)
	if err != nil {
		return nil, fmt.Errorf("policy: parse the DKIM key of %s: %w", d.Name, err)
	}
	e.keys.put(d.keyID, k)
	return k, nil
}

// WarmKeys loads the keys of up to the cache's capacity domains of the
// current snapshot (all of them in a deployment smaller than the cache),
// so that signing does not depend on the database after startup. It stops
// at the first error or when ctx is done, and returns how many it loaded.
func (e *Engine) WarmKeys(ctx context.Context) (int, error) {
	s, err := e.Current()
	if err != nil {
		return 0, err
	}
	n := 0
	for o := range s.orgs.all() {
		for _, d := range o.domains {
			if n >= e.keys.cap || ctx.Err() != nil {
				return n, ctx.Err()
			}
			if _, err := e.Signer(ctx, d); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
