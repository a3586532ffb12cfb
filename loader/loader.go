// Package loader builds sendergate's two in-memory views of the stored
// state, the policy snapshot and the provider zone, from one consistent
// read-only transaction of the store (store.LoadState): all of it at
// start, then only the organizations the change log names. It is the one
// place that knows both the store's rows and the policy's input types, so
// package policy imports no store.
package loader

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
)

// ZoneFunc receives the provider zone's domain rows whenever its content
// may have changed, with the zone version (the SOA serial: the state
// version of the last change that touched the zone, the same on every
// instance). rows must not be modified.
type ZoneFunc func(serial uint32, rows []store.DomainRow)

// Loader implements policy.Source over a store.
type Loader struct {
	st     *store.Store
	zone   string // dns.zone, for T.bounce.ZONE
	onZone ZoneFunc

	mu          sync.Mutex
	rows        map[string][]store.DomainRow // by organization id
	zoneVersion int64
}

var _ policy.Source = (*Loader)(nil)

// New returns a loader over st for the provider zone zone; onZone may be
// nil.
func New(st *store.Store, zone string, onZone ZoneFunc) *Loader {
	return &Loader{st: st, zone: zone, onZone: onZone, rows: map[string][]store.DomainRow{}}
}

// Version implements policy.Source.
func (l *Loader) Version(ctx context.Context) (int64, error) { return l.st.Version(ctx) }

// Load implements policy.Source: it reads what changed since since,
// converts it to the policy's input, and hands the zone its rows when the
// zone version moved.
func (l *Loader) Load(ctx context.Context, since int64) (*policy.Delta, error) {
	st, err := l.st.LoadState(ctx, since)
	if err != nil {
		return nil, err
	}
	delta := &policy.Delta{Version: st.Version, Full: st.Full, Changed: st.Orgs}
	if !st.Full && len(st.Orgs) == 0 {
		return delta, nil
	}
	byOrg := make(map[string]*policy.OrgInput, len(st.OrgRows))
	delta.Orgs = make([]policy.OrgInput, 0, len(st.OrgRows))
	for _, o := range st.OrgRows {
		delta.Orgs = append(delta.Orgs, policy.OrgInput{ID: o.ID, Name: o.Name})
	}
	for i := range delta.Orgs {
		byOrg[delta.Orgs[i].ID] = &delta.Orgs[i]
	}
	for _, a := range st.Accounts {
		if o := byOrg[a.OrgID]; o != nil {
			o.Accounts = append(o.Accounts, policy.AccountInput{ID: a.ID, Name: a.Name, Username: a.Username, PasswordHash: a.PasswordHash})
		}
	}
	grants := make(map[string][]string)
	for _, g := range st.Grants {
		grants[g.DomainID] = append(grants[g.DomainID], g.AccountID)
	}
	zoneRows := make(map[string][]store.DomainRow, len(st.Orgs))
	for _, d := range st.Domains {
		o := byOrg[d.OrgID]
		if o == nil {
			continue
		}
		o.Domains = append(o.Domains, policy.DomainInput{ID: d.ID, Name: d.Name, Status: d.Status, Sandbox: d.Sandbox,
			Restricted: d.Restricted, Selector: d.Selector, Grants: grants[d.ID],
			BounceDomain: domains.EnvelopeDomain(d.Name, d.ReturnPath, d.Token, l.zone),
			KeyID:        keyID(d.DKIMTXT), KeyPEM: d.DKIMKey})
		d.DKIMKey = "" // the zone rows kept below need no private key
		zoneRows[d.OrgID] = append(zoneRows[d.OrgID], d)
	}
	for _, a := range st.Confirmed {
		if o := byOrg[a.OrgID]; o != nil {
			o.Confirmed = append(o.Confirmed, a.Email)
		}
	}
	l.updateZone(st, zoneRows)
	return delta, nil
}

// updateZone keeps the zone's rows per organization and hands the zone
// all of them when the zone version moved (or on a full load).
func (l *Loader) updateZone(st *store.State, zoneRows map[string][]store.DomainRow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.Full {
		l.rows = zoneRows
	} else {
		for _, id := range st.Orgs {
			if rows, ok := zoneRows[id]; ok {
				l.rows[id] = rows
			} else {
				delete(l.rows, id)
			}
		}
	}
	if l.onZone == nil || (!st.Full && st.ZoneVersion == l.zoneVersion) {
		return
	}
	l.zoneVersion = st.ZoneVersion
	n := 0
	for _, rows := range l.rows {
		n += len(rows)
	}
	all := make([]store.DomainRow, 0, n)
	for _, rows := range l.rows {
		all = append(all, rows...)
	}
	l.onZone(uint32(st.ZoneVersion), all)
}

// keyID names a key by its public TXT value (one per key), so the
// policy's key cache keeps a parsed key across changes that leave it.
func keyID(txt string) string {
	if txt == "" || txt == "-" {
		return ""
	}
	sum := sha256.Sum256([]byte(txt))
	return string(sum[:12])
}

// NewEngine returns a policy engine loading from st through a Loader for
// zone (with onZone, which may be nil), reading private keys from st on
// first use unless opts names another key source.
func NewEngine(st *store.Store, zone string, onZone ZoneFunc, opts policy.Options) *policy.Engine {
	if opts.Keys == nil {
		opts.Keys = st
	}
	if opts.ParseKey == nil {
		opts.ParseKey = dkim.ParsePrivateKey
	}
	return policy.NewEngine(New(st, zone, onZone), opts)
}
