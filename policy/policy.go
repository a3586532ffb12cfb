// Package policy is the one authorization decision of sendergate: may this
// SMTP account send mail whose author mailboxes (RFC 5322 From and Sender)
// are these? Every adapter asks it: the submission server (smtpd), the
// milter and the Postfix policy service. It imports no protocol package.
//
// Decisions come from an immutable in-memory Snapshot of organizations,
// accounts, domains, grants, keys and confirmed addresses, so no database is
// touched per message. An Engine holds the current snapshot and rebuilds it
// when the store's state version changes; until one has loaded, every
// decision is a temporary failure (fail closed).
package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reason says why a decision came out as it did.
type Reason string

// The reasons a decision can carry.
const (
	OK            Reason = "ok"
	NotReady      Reason = "not_ready"      // no snapshot yet: temporary
	UnknownDomain Reason = "unknown_domain" // not a domain of the account's organization
	NotVerified   Reason = "not_verified"   // pending: records not verified yet
	Revoked       Reason = "revoked"        // verification lapsed
	NotGranted    Reason = "not_granted"    // restricted and the account is not granted
	NotConfirmed  Reason = "not_confirmed"  // strict mode and the mailbox is not confirmed
	SandboxLimit  Reason = "sandbox_limit"  // daily sandbox limit reached: temporary
	BadAddress    Reason = "bad_address"    // a mailbox without a domain
	Internal      Reason = "internal"       // an internal error: temporary
)

// ErrBadCredentials is returned by Authenticate for an unknown user or a
// wrong password (deliberately the same error for both).
var ErrBadCredentials = errors.New("policy: invalid credentials")

// ErrNotReady is returned while no snapshot has been loaded.
var ErrNotReady = errors.New("policy: no snapshot loaded yet")

// Account is an SMTP sub-account as the policy knows it.
type Account struct {
	ID       string
	OrgID    string
	Org      string // organization name
	Name     string
	Username string
	Created  time.Time // for the new-account sending limit
	Limits   *Limits   // sending limits set for the account; nil: the defaults
	hash     [sha256.Size]byte
}

// Limits are sending limits stored for an organization or an account:
// recipients per minute, hour and day, 0 meaning none. The policy only
// carries them; package limits applies them.
type Limits struct {
	PerMinute, PerHour, PerDay int64
}

// SameCredentials reports whether a and b are the same account with the
// same password: false once the password was rotated (or the account
// replaced), so a session authenticated with the old one can be ended.
func (a *Account) SameCredentials(b *Account) bool {
	return a != nil && b != nil && a.ID == b.ID && a.hash == b.hash
}

// Domain is a sending domain as the policy knows it: what decides whether
// mail may use it and what is needed to sign it.
//
// A snapshot holds one per domain (a million of them at scale): fields
// are added only when a decision or a signature needs them.
type Domain struct {
	ID         string
	Name       string // A-label, lowercase, no trailing dot
	Status     string // pending | verified | failing | revoked
	Sandbox    bool
	Restricted bool
	Selector   string
	// BounceDomain is the domain of the rewritten envelope sender: the
	// return-path domain, or T.bounce.ZONE without one.
	BounceDomain string
	grants       map[string]struct{} // account ids
	keyID        string              // the key cache's name of its key
}

// CanSend reports whether the domain's status allows sending.
func (d *Domain) CanSend() bool { return d.Status == "verified" || d.Status == "failing" }

// Granted reports whether account a may send as d.
func (d *Domain) Granted(a *Account) bool {
	if !d.Restricted {
		return true
	}
	_, ok := d.grants[a.ID]
	return ok
}

// Decision is the answer to "may this account send as these mailboxes".
type Decision struct {
	Allowed   bool
	Temporary bool   // a refusal that may succeed later (4xx)
	Reason    Reason // why
	Mailbox   string // the mailbox the refusal is about
	// Domain is, for a refusal, the domain it is about; for an allowed
	// decision, the domain to sign as (the first From mailbox's domain).
	Domain *Domain
	// DomainName is the name of the domain the decision is about, known
	// even when no such Domain exists.
	DomainName string
}

// Message is a sentence for the SMTP client or the log, naming the domain
// and what to do about it.
func (d Decision) Message() string {
	switch d.Reason {
	case OK:
		return "sender authorized"
	case NotReady:
		return "authorization data not loaded yet, try again later"
	case UnknownDomain:
		return fmt.Sprintf("domain %s is not a sending domain of your organization; add and verify it first", d.DomainName)
	case NotVerified:
		return fmt.Sprintf("domain %s is not verified yet; publish its DNS records and verify it", d.DomainName)
	case Revoked:
		return fmt.Sprintf("domain %s lost its verification (DNS records missing); restore the records and verify it again", d.DomainName)
	case NotGranted:
		return fmt.Sprintf("domain %s is not granted to this SMTP account; grant it in the domain's access settings", d.DomainName)
	case NotConfirmed:
		return fmt.Sprintf("address %s is not a confirmed sender address of your organization; add and confirm it first", d.Mailbox)
	case SandboxLimit:
		return "sandbox daily limit reached"
	case BadAddress:
		return fmt.Sprintf("author address %q has no domain", d.Mailbox)
	default:
		return "internal error while authorizing the sender, try again later"
	}
}

// HashPassword returns the stored form of a generated SMTP password: hex
// SHA-256. Generated passwords carry >= 128 bits of entropy, so a fast hash
// is the right choice: a slow KDF would only make AUTH cost milliseconds.
func HashPassword(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}

// Snapshot is an immutable view of everything a decision needs, one view
// per organization so that a change replaces one organization's view and
// shares every other (see Engine).
type Snapshot struct {
	version          int64
	built            time.Time
	requireConfirmed bool
	orgs             *index // by organization id
	byName           *index // by organization name
	domains          int    // domains in all views
	dummy            [sha256.Size]byte
}

// orgView is one organization's part of a snapshot. Its sets are sorted
// slices searched by halving rather than maps: at a million domains in
// 100,000 organizations a map per organization costs about 1 KiB of
// buckets each, and an organization has few entries.
type orgView struct {
	id, name  string
	limits    *Limits
	accounts  []*Account // by username (ACCOUNT@ORG)
	domains   []*Domain  // by name
	confirmed []string   // addresses as stored and lowercased, sorted; nil when none
}

// domain returns the view's domain called name.
func (o *orgView) domain(name string) (*Domain, bool) {
	i, ok := slices.BinarySearchFunc(o.domains, name, func(d *Domain, n string) int { return strings.Compare(d.Name, n) })
	if !ok {
		return nil, false
	}
	return o.domains[i], true
}

// account returns the view's account with this username.
func (o *orgView) account(username string) (*Account, bool) {
	i, ok := slices.BinarySearchFunc(o.accounts, username, func(a *Account, u string) int { return strings.Compare(a.Username, u) })
	if !ok {
		return nil, false
	}
	return o.accounts[i], true
}

// Version is the store state version the snapshot was built from.
func (s *Snapshot) Version() int64 { return s.version }

// Built is when the snapshot was built.
func (s *Snapshot) Built() time.Time { return s.built }

// DomainsByStatus counts the snapshot's domains by status (pending,
// verified, failing, revoked), sandbox domains left out: every
// organization has one, always verified. It visits every domain.
func (s *Snapshot) DomainsByStatus() map[string]int {
	out := map[string]int{}
	for o := range s.orgs.all() {
		for _, d := range o.domains {
			if !d.Sandbox {
				out[d.Status]++
			}
		}
	}
	return out
}

// Counts returns the number of organizations and domains in the snapshot.
func (s *Snapshot) Counts() (orgs, domains int) { return s.orgs.len(), s.domains }

// Authenticate checks username and password in constant time (the hash of
// the password is compared whether or not the user exists).
func (s *Snapshot) Authenticate(username, password string) (*Account, error) {
	sum := sha256.Sum256([]byte(password))
	a, ok := s.Account(username)
	want := &s.dummy
	if ok {
		want = &a.hash
	}
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
		return nil, ErrBadCredentials
	}
	return a, nil
}

// Account returns the account with this username (as typed by the client;
// for adapters where someone else, e.g. Postfix, authenticated it).
// Usernames are ACCOUNT@ORG: the organization is found by the part after
// the last "@".
func (s *Snapshot) Account(username string) (*Account, bool) {
	at := strings.LastIndexByte(username, '@')
	if at < 0 {
		return nil, false
	}
	o, ok := s.byName.get(username[at+1:])
	if !ok {
		return nil, false
	}
	return o.account(username)
}

// OrgName returns the name of the organization with id orgID.
func (s *Snapshot) OrgName(orgID string) (string, bool) {
	o, ok := s.orgs.get(orgID)
	if !ok {
		return "", false
	}
	return o.name, true
}

// OrgLimits returns the sending limits stored for an organization, nil
// when none were set (the defaults apply).
func (s *Snapshot) OrgLimits(orgID string) *Limits {
	if o, ok := s.orgs.get(orgID); ok {
		return o.limits
	}
	return nil
}

// Domain returns the organization's domain called name.
func (s *Snapshot) Domain(orgID, name string) (*Domain, bool) {
	o, ok := s.orgs.get(orgID)
	if !ok {
		return nil, false
	}
	return o.domain(name)
}

// Decide answers whether account a may send mail authored by mailboxes.
// Each mailbox must be normalized (local part as given, domain lowercase
// A-label without trailing dot: see msg.NormalizeAddress); comparison is
// exact, so a subdomain is not its parent. The first refusal wins; an
// allowed decision carries the first mailbox's domain, to sign as. In the
// common path (every domain allowed) Decide does not allocate.
func (s *Snapshot) Decide(a *Account, mailboxes ...string) Decision {
	org, _ := s.orgs.get(a.OrgID)
	var first *Domain
	for _, mb := range mailboxes {
		at := strings.LastIndexByte(mb, '@')
		if at <= 0 || at == len(mb)-1 {
			return Decision{Reason: BadAddress, Mailbox: mb}
		}
		name := mb[at+1:]
		var d *Domain
		ok := false
		if org != nil {
			d, ok = org.domain(name)
		}
		switch {
		case !ok:
			return Decision{Reason: UnknownDomain, Mailbox: mb, DomainName: name}
		case d.Status == "revoked":
			return Decision{Reason: Revoked, Mailbox: mb, Domain: d, DomainName: name}
		case !d.CanSend():
			return Decision{Reason: NotVerified, Mailbox: mb, Domain: d, DomainName: name}
		case !d.Granted(a):
			return Decision{Reason: NotGranted, Mailbox: mb, Domain: d, DomainName: name}
		case s.requireConfirmed && !d.Sandbox && !org.isConfirmed(mb):
			return Decision{Reason: NotConfirmed, Mailbox: mb, Domain: d, DomainName: name}
		}
		if first == nil {
			first = d
		}
	}
	if first == nil {
		return Decision{Reason: BadAddress}
	}
	return Decision{Allowed: true, Reason: OK, Domain: first, DomainName: first.Name}
}

func (o *orgView) isConfirmed(mailbox string) bool {
	if _, ok := slices.BinarySearch(o.confirmed, mailbox); ok {
		return true
	}
	_, ok := slices.BinarySearch(o.confirmed, strings.ToLower(mailbox))
	return ok
}
