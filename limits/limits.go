// Package limits enforces sendergate's sending limits: how many recipients
// an SMTP account and its organization may send to per minute, per hour
// and per day. It imports no protocol package; the message stage (gate)
// asks it at RCPT on behalf of every adapter.
//
// Windows are fixed and aligned to UTC: a minute window starts at second
// 0, an hour window at minute 0, a day window at 00:00 UTC. A limit of n
// per hour therefore admits at most n recipients between 14:00 and 15:00,
// and (as with any fixed window) up to 2n in the sixty minutes around
// 15:00.
//
// Instances sharing a database agree without a database round trip per
// recipient. The store keeps, per scope, window and window start, the
// recipients settled (used) and the budget instances hold as slices
// (leased). An instance admits from its own slice in memory; when the
// slice is spent it leases more in one atomic statement that never takes
// used + leased past the limit (at most half of what is free beyond what
// it needs at once), and at every sync (Options.Sync, one second by
// default) it settles what it admitted and gives back what it does not
// expect to need. So the recipients admitted by all instances in a window
// never exceed the limit; the price is that a slice held by one instance
// is not available to another until that instance's next sync, so a
// refusal can come up to a second early. A limit lowered during a window
// applies to new slices at once and to slices already held at their
// holder's next sync.
//
// Counts live in the store, so they survive a restart. An instance that
// dies without settling loses nothing that was admitted (it is still
// leased); the unused part of its slices stays unavailable until the
// window ends. With the store unreachable an instance goes on admitting
// from the slices it holds and refuses beyond them (fail closed).
package limits

import (
	"fmt"
	"time"
)

// MaxLimit is the largest limit accepted (in the config and over the API):
// far above any real sending rate, and far from overflowing a counter.
const MaxLimit = 1_000_000_000_000

// Window is a fixed window of time, aligned to UTC.
type Window int

// The windows a limit is counted in.
const (
	Minute Window = iota
	Hour
	Day
	numWindows
)

// Length returns how long the window is.
func (w Window) Length() time.Duration {
	switch w {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	default:
		return 24 * time.Hour
	}
}

// String returns "minute", "hour" or "day".
func (w Window) String() string {
	switch w {
	case Minute:
		return "minute"
	case Hour:
		return "hour"
	default:
		return "day"
	}
}

// Start returns the start of the window that holds t. Go's time has no
// leap seconds, so truncating the absolute time gives UTC boundaries.
func (w Window) Start(t time.Time) time.Time { return t.UTC().Truncate(w.Length()) }

// Values are recipients per Minute, Hour and Day (indexed by Window);
// 0 means no limit in that window.
type Values [numWindows]int64

// Any reports whether some window has a limit.
func (v Values) Any() bool { return v[Minute] > 0 || v[Hour] > 0 || v[Day] > 0 }

// Kind is what a limit applies to.
type Kind int

// The scopes a limit applies to.
const (
	Account Kind = iota
	Organization
)

// String returns "account" or "organization".
func (k Kind) String() string {
	if k == Account {
		return "account"
	}
	return "organization"
}

// Scope is one account or organization to count recipients for, with the
// limits that apply to it.
type Scope struct {
	Kind   Kind
	ID     string // the account's or the organization's id
	OrgID  string // the organization (the account's, or ID itself)
	Name   string // username (ACCOUNT@ORG) or organization name, for texts
	Limits Values
}

// Defaults are the [limits] settings of the config: the limits of every
// organization and account that has none of its own, and the spike guard
// for new accounts.
type Defaults struct {
	Org, Account Values
	// NewAccountPerDay, when positive, caps the day limit of accounts
	// younger than NewAccountAge.
	NewAccountPerDay int64
	NewAccountAge    time.Duration
}

// Resolve returns the limits that apply to an organization and one of its
// accounts at now. org and acct are the limits stored for them, nil when
// none were set; stored limits replace the defaults of their scope whole
// (so a stored 0 means none in that window). An account created less than
// NewAccountAge before now gets the tighter of its day limit and
// NewAccountPerDay, whatever was stored for it.
func (d Defaults) Resolve(org, acct *Values, created, now time.Time) (orgL, acctL Values) {
	orgL, acctL = d.Org, d.Account
	if org != nil {
		orgL = *org
	}
	if acct != nil {
		acctL = *acct
	}
	if d.NewAccountPerDay > 0 && !created.IsZero() && now.Sub(created) < d.NewAccountAge {
		acctL[Day] = tighter(acctL[Day], d.NewAccountPerDay)
	}
	return orgL, acctL
}

// tighter returns the smaller of two limits, where 0 means none.
func tighter(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	default:
		return min(a, b)
	}
}

// Refused says why recipients were not admitted: a limit was reached, or
// (Unavailable) the slice held is spent and the shared counters cannot be
// reached to check for more.
type Refused struct {
	Kind        Kind
	Name        string
	Window      Window
	Limit       int64
	Frees       time.Time // the end of the window
	Unavailable bool
}

// Text is the sentence of the SMTP reply (451 4.7.0): the scope, the
// window and when it frees up, relative to now.
func (r *Refused) Text(now time.Time) string {
	if r.Unavailable {
		return fmt.Sprintf("the sending limit of %s %s cannot be checked right now; try again in a few minutes", r.Kind, r.Name)
	}
	wait := r.Frees.Sub(now).Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	return fmt.Sprintf("sending limit reached for %s %s: %s per %s; it frees up at %s (in %s)",
		r.Kind, r.Name, Recipients(r.Limit), r.Window, r.Frees.UTC().Format("2006-01-02 15:04:05 UTC"), wait)
}

// Recipients words a count: "1 recipient", "5 recipients".
func Recipients(n int64) string {
	if n == 1 {
		return "1 recipient"
	}
	return fmt.Sprintf("%d recipients", n)
}

// Grant is how much a lease takes from a counter row holding used and
// leased under limit: at least need (or nothing, when less than need is
// free), at most want, and beyond need at most half of what is free, so
// that other instances always find something left.
func Grant(limit, used, leased, need, want int64) int64 {
	free := limit - used - leased
	if free <= 0 || free < need {
		return 0
	}
	g := max(need, min(want, free/2))
	return min(g, free)
}
