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
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
)

// Zone is the provider zone the loader keeps up to date; *zone.Server
// implements it.
type Zone interface {
	// Update replaces every record (a full load).
	Update(serial uint32, rrs []dns.RR) uint32
	// Patch deletes and adds records (a change of some organizations).
	Patch(serial uint32, deleted, added []dns.RR) uint32
	// Records returns the records served at a name.
	Records(name string) []dns.RR
}

// Loader implements policy.Source over a store.
type Loader struct {
	st   *store.Store
	zone string // dns.zone, for T.bounce.ZONE
	z    Zone   // nil: no zone to keep
	zo   domains.ZoneOptions

	mu sync.Mutex
	// keys names, per organization, the zone's records of its domains, so
	// that a change replaces exactly them (the records themselves live in
	// the zone only). Each is one string (zoneKeys), not a slice of
	// structs: at a million domains that was 100 MB.
	keys map[string]string
	seed maphash.Seed // of the fingerprints
}

// zoneKey is what names a domain's records in the zone.
type zoneKey struct {
	fp                    uint64 // of the domain's records, as fingerprint makes it
	sandbox               bool
	name, selector, token string
	extra                 []string // selectors of the next and retired keys
}

// appendRecords appends the zone records of rows to rrs, and the
// fingerprint of each row's records to fps.
func (l *Loader) appendRecords(rrs []dns.RR, fps []uint64, rows []*store.DomainRow, in *interner) ([]dns.RR, []uint64) {
	for _, d := range rows {
		n := len(rrs)
		rrs = domains.AppendDomainRecords(rrs, d, in.of, l.zo)
		fps = append(fps, fingerprint(l.seed, rrs[n:]))
	}
	return rrs, fps
}

// fingerprint hashes the owner names, types, TTLs and data of rrs: two
// domains with the same fingerprint publish the same records, so a change
// of an organization leaves its unchanged domains' records alone (adding
// a domain to an organization of ten looked up, deleted and added again
// the records of all eleven).
func fingerprint(seed maphash.Seed, rrs []dns.RR) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var n [8]byte
	for _, rr := range rrs {
		hd := rr.Header()
		h.WriteString(hd.Name)
		binary.LittleEndian.PutUint16(n[:2], hd.Rrtype)
		binary.LittleEndian.PutUint32(n[2:6], hd.Ttl)
		h.Write(n[:6])
		switch x := rr.(type) {
		case *dns.TXT:
			for _, t := range x.Txt {
				binary.LittleEndian.PutUint32(n[:4], uint32(len(t)))
				h.Write(n[:4])
				h.WriteString(t)
			}
		case *dns.MX:
			binary.LittleEndian.PutUint16(n[:2], x.Preference)
			h.Write(n[:2])
			h.WriteString(x.Mx)
		default:
			h.WriteString(rr.String())
		}
		h.WriteByte(0)
	}
	return h.Sum64()
}

// snapshotStrings returns the strings the snapshot keeps of d: its id,
// its name and its bounce domain (domains.EnvelopeDomain), as one string
// of a (nil: its own allocation), with the name shared by LABEL.NAME. As
// separate strings (the database driver's and a concatenation) they cost
// 48 bytes more per domain.
func snapshotStrings(a *arena, d *store.DomainRow, zone string) (id, name, envelope string) {
	if d.ReturnPath != "" { // ID, then LABEL.NAME
		s := a.concat(d.ID, d.ReturnPath, ".", d.Name)
		return s[:len(d.ID)], s[len(s)-len(d.Name):], s[len(d.ID):]
	}
	// ID, NAME, then T.bounce.ZONE (domains.BounceDomain)
	s := a.concat(d.ID, d.Name, d.Token, ".bounce.", zone)
	return s[:len(d.ID)], s[len(d.ID) : len(d.ID)+len(d.Name)], s[len(d.ID)+len(d.Name):]
}

// The packed form of an organization's zoneKeys: per domain, the eight
// octets of its records' fingerprint, "s" and the name for a sandbox
// domain or "c" for another, then the token, the selector and each extra
// selector, each after a separator byte, and a newline. Names, tokens and
// selectors are DNS labels: they hold none of these bytes (the
// fingerprint may, so it is read by its length).
const (
	keySep   = '\x00'
	keyExtra = '\x01'
	keyEnd   = '\n'
)

// packKeys returns the packed zoneKeys of rows, whose records have the
// fingerprints fps, as a string of a (nil: its own allocation).
func packKeys(a *arena, rows []*store.DomainRow, fps []uint64) string {
	var b []byte
	for i, d := range rows {
		b = binary.LittleEndian.AppendUint64(b, fps[i])
		if d.Sandbox {
			b = append(b, 's')
			b = append(b, d.Name...)
		} else {
			b = append(b, 'c')
		}
		b = append(b, keySep)
		b = append(b, d.Token...)
		b = append(b, keySep)
		b = append(b, d.Selector...)
		for _, k := range d.Extra {
			if k.Selector != d.Selector {
				b = append(b, keyExtra)
				b = append(b, k.Selector...)
			}
		}
		b = append(b, keyEnd)
	}
	return a.copyOf(b)
}

// unpackKeys yields the zoneKeys of packed.
func unpackKeys(packed string, yield func(zoneKey)) {
	for len(packed) > 8 {
		fp := binary.LittleEndian.Uint64([]byte(packed[:8]))
		line, rest, _ := strings.Cut(packed[8:], string(keyEnd))
		packed = rest
		if line == "" {
			continue
		}
		kind, rest := line[0], line[1:]
		name, rest, _ := strings.Cut(rest, string(keySep))
		token, rest, _ := strings.Cut(rest, string(keySep))
		sels := strings.Split(rest, string(keyExtra))
		yield(zoneKey{fp: fp, sandbox: kind == 's', name: name, token: token, selector: sels[0], extra: sels[1:]})
	}
}

var _ policy.Source = (*Loader)(nil)

// New returns a loader over st for the provider zone zone; z, when not
// nil, is kept serving the domains' records built with zo.
func New(st *store.Store, zone string, z Zone, zo domains.ZoneOptions) *Loader {
	return &Loader{st: st, zone: zone, z: z, zo: zo, keys: map[string]string{}, seed: maphash.MakeSeed()}
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
	in := newInterner()
	var a *arena // a full load's kept strings fill whole chunks
	if st.Full {
		a = new(arena)
	}
	acctLimits := make(map[string]*policy.Limits)
	for _, r := range st.Limits {
		l := &policy.Limits{PerMinute: r.PerMinute, PerHour: r.PerHour, PerDay: r.PerDay}
		if r.AccountID != "" {
			acctLimits[r.AccountID] = l
		} else if o := byOrg[r.OrgID]; o != nil {
			o.Limits = l
		}
	}
	for _, a := range st.Accounts {
		if o := byOrg[a.OrgID]; o != nil {
			o.Accounts = append(o.Accounts, policy.AccountInput{ID: a.ID, Name: a.Name, Username: a.Username, PasswordHash: a.PasswordHash,
				Created: a.CreatedAt.Time, Limits: acctLimits[a.ID]})
		}
	}
	grants := make(map[string][]string)
	for _, g := range st.Grants {
		grants[g.DomainID] = append(grants[g.DomainID], g.AccountID)
	}
	attachKeys(st, in)
	// Each domain's organization is looked up once, and each
	// organization's slices are made at their size: growing them one
	// append at a time, and copying every row into a map of slices, was a
	// third of a million-domain load's conversion.
	orgOf := make([]*policy.OrgInput, len(st.Domains))
	count := make(map[*policy.OrgInput]int, len(delta.Orgs))
	for i := range st.Domains {
		if o := byOrg[st.Domains[i].OrgID]; o != nil {
			orgOf[i] = o
			count[o]++
		}
	}
	zoneRows := make(map[string][]*store.DomainRow, len(st.Orgs))
	for o, n := range count {
		o.Domains = make([]policy.DomainInput, 0, n)
		zoneRows[o.ID] = make([]*store.DomainRow, 0, n)
	}
	for i := range st.Domains {
		d, o := &st.Domains[i], orgOf[i]
		if o == nil {
			continue
		}
		// Values many rows share are kept once (unique): the selectors and
		// statuses of most domains, a key shared by several domains, and
		// the zone's TXT values of those.
		d.Status, d.Selector = in.of(d.Status), in.of(d.Selector)
		d.DKIMTXT, d.DMARCPolicy, d.DMARCRUA = in.of(d.DKIMTXT), in.of(d.DMARCPolicy), in.of(d.DMARCRUA)
		id, name, envelope := snapshotStrings(a, d, l.zone)
		o.Domains = append(o.Domains, policy.DomainInput{ID: id, Name: name, Status: d.Status, Sandbox: d.Sandbox,
			Restricted: d.Restricted, Selector: d.Selector, Grants: grants[d.ID],
			BounceDomain: envelope, KeyID: in.keyID(d.DKIMTXT), KeyPEM: d.DKIMKey})
		d.DKIMKey = "" // the zone needs no private key
		zoneRows[o.ID] = append(zoneRows[o.ID], d)
	}
	for _, a := range st.Confirmed {
		if o := byOrg[a.OrgID]; o != nil {
			o.Confirmed = append(o.Confirmed, a.Email)
		}
	}
	l.updateZone(st, zoneRows, in, a)
	return delta, nil
}

// updateZone brings the zone to the state read: a full Update on a full
// load, otherwise a Patch replacing the records of the changed
// organizations' old domains with those of their new ones. The serial is
// the zone version; a Patch that changes nothing keeps the served one.
func (l *Loader) updateZone(st *store.State, zoneRows map[string][]*store.DomainRow, in *interner, a *arena) {
	if l.z == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	serial := uint32(st.ZoneVersion)
	if st.Full {
		l.keys = make(map[string]string, len(zoneRows))
		rrs := make([]dns.RR, 0, 4*len(st.Domains)+2)
		var fps []uint64
		for org, rows := range zoneRows {
			rrs, fps = l.appendRecords(rrs, fps[:0], rows, in)
			l.keys[org] = packKeys(a, rows, fps)
		}
		l.z.Update(serial, append(rrs, domains.GlobalZoneRecords(l.zo)...))
		return
	}
	// A domain whose records are as they were is left alone: the owner
	// names of two domains never meet (each has its own token, a sandbox
	// domain its own name), so deleting every record at the names of the
	// changed domains touches no other domain's records.
	var deleted, added []dns.RR
	for _, org := range st.Orgs {
		rows := zoneRows[org]
		fresh, fps := make([][]dns.RR, len(rows)), make([]uint64, 0, len(rows))
		for i := range rows {
			fresh[i], fps = l.appendRecords(nil, fps, rows[i:i+1], in)
		}
		unmatched := make(map[uint64]int, len(fps))
		for _, fp := range fps {
			unmatched[fp]++
		}
		kept := make(map[uint64]int)
		unpackKeys(l.keys[org], func(k zoneKey) {
			if unmatched[k.fp] > 0 {
				unmatched[k.fp]--
				kept[k.fp]++
				return
			}
			for _, name := range domains.ZoneOwners(k.sandbox, k.name, k.selector, k.token, l.zo) {
				deleted = append(deleted, l.z.Records(name)...)
			}
			for _, name := range domains.KeyOwners(k.sandbox, k.name, k.extra, k.token, l.zo) {
				deleted = append(deleted, l.z.Records(name)...)
			}
		})
		for i, rrs := range fresh {
			if kept[fps[i]] > 0 {
				kept[fps[i]]--
			} else {
				added = append(added, rrs...)
			}
		}
		if len(rows) > 0 {
			l.keys[org] = packKeys(a, rows, fps)
		} else {
			delete(l.keys, org)
		}
	}
	l.z.Patch(serial, deleted, added)
}

// attachKeys sets each domain's Extra to its published keys of st.Keys
// (their selectors and TXT values interned by in). The keys go into one
// slice, grouped by domain, rather than a slice per domain.
func attachKeys(st *store.State, in *interner) {
	if len(st.Keys) == 0 {
		return
	}
	at := make(map[string]int32, len(st.Domains))
	for i := range st.Domains {
		at[st.Domains[i].ID] = int32(i)
	}
	owner := make([]int32, len(st.Keys))
	start := make([]int32, len(st.Domains)+1)
	for j := range st.Keys {
		i, ok := at[st.Keys[j].DomainID]
		if !ok {
			i = -1
		} else {
			start[i+1]++
		}
		owner[j] = i
	}
	for i := range st.Domains {
		start[i+1] += start[i]
	}
	flat := make([]store.KeyRow, start[len(st.Domains)])
	next := slices.Clone(start[:len(st.Domains)])
	for j, k := range st.Keys {
		if i := owner[j]; i >= 0 {
			k.Selector, k.TXT = in.of(k.Selector), in.of(k.TXT)
			flat[next[i]] = k
			next[i]++
		}
	}
	for i := range st.Domains {
		if lo, hi := start[i], start[i+1]; hi > lo {
			st.Domains[i].Extra = flat[lo:hi:hi]
		}
	}
}

// interner keeps one copy of each value a load reads many times (a
// map per load: unique.Make was a tenth of a million-domain load's CPU).
type interner struct {
	m   map[string]string
	ids map[string]string // keyID by TXT value
}

func newInterner() *interner {
	return &interner{m: map[string]string{}, ids: map[string]string{}}
}

// of returns the first copy of s this load saw.
func (in *interner) of(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	in.m[s] = s
	return s
}

// keyID is keyID(txt), computed once per distinct value.
func (in *interner) keyID(txt string) string {
	if id, ok := in.ids[txt]; ok {
		return id
	}
	id := keyID(txt)
	in.ids[txt] = id
	return id
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
// the provider zone zone (kept in z, which may be nil), reading private
// keys from st on first use unless opts names another key source.
func NewEngine(st *store.Store, zone string, z Zone, zo domains.ZoneOptions, opts policy.Options) *policy.Engine {
	if opts.Keys == nil {
		opts.Keys = st
	}
	if opts.ParseKey == nil {
		opts.ParseKey = dkim.ParsePrivateKey
	}
	return policy.NewEngine(New(st, zone, z, zo), opts)
}
