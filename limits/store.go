package limits

import (
	"cmp"
	"context"
	"slices"
	"strings"
)

// Store holds the counters shared by every instance; *store.Store
// implements it.
type Store interface {
	// Exchange applies ops in one transaction, in the order given (sorted
	// by Key, so that concurrent exchanges lock rows in one order), and
	// fills in their results. For each op it creates the row when
	// missing, adds Used to the row's used, Leased to its leased (never
	// below 0) and Refused to its refused, then leases
	// Grant(Limit, used, leased, Need, Want) more when Limit > 0. With
	// Reached set it marks the row reached if it was not, and then (and
	// only then) records Event as a limit.reached event of OrgID.
	Exchange(ctx context.Context, ops []Op) error
	// Counters returns the rows of an organization and its accounts whose
	// window starts at starts[w] for window w.
	Counters(ctx context.Context, orgID string, starts Starts) ([]Row, error)
	// DeleteCounters removes the rows of windows that ended before end
	// (Unix ms).
	DeleteCounters(ctx context.Context, end int64) error
}

// Starts are window starts in Unix milliseconds, indexed by Window.
type Starts [numWindows]int64

// Key names one counter: a scope's count in one window.
type Key struct {
	Kind   Kind
	ID     string
	Window Window
	Start  int64 // Unix ms
}

func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID),
		cmp.Compare(a.Window, b.Window), cmp.Compare(a.Start, b.Start))
}

// Op is one counter's change in an Exchange.
type Op struct {
	Key   Key
	OrgID string
	End   int64 // the window's end, Unix ms
	Limit int64 // 0: no limit, nothing is leased
	// Used moves recipients into the settled count (negative: recipients
	// given back after they were settled); Leased changes the budget held
	// (negative: a slice, or the settled part of it, given back).
	Used, Leased, Refused int64
	// Need and Want ask for a new slice (see Grant). Keep is the unused
	// slice the op keeps: when the row is over Limit (the limit was
	// lowered), up to Keep of it is taken back (a negative Granted).
	Need, Want, Keep int64
	// Reached asks to mark the window's limit reached; Event is the
	// detail of the limit.reached event recorded the first time, and
	// ReachedAt (Unix ms) when the limit was hit.
	Reached   bool
	Event     string
	ReachedAt int64
	// Exists tells that the row is known to exist (no need to create it).
	Exists bool

	// Results.
	Granted      int64
	RowUsed      int64 // the row after the op
	RowLeased    int64
	FirstReached bool // this op marked the row reached
}

// Grant is what the op leases from a row holding used and leased (after
// its Used and Leased were applied): Grant with its limit, need and want,
// or, when the row is over its limit, minus what it kept, up to the
// excess.
func (o *Op) Grant(used, leased int64) int64 {
	if o.Limit <= 0 {
		return 0
	}
	if over := used + leased - o.Limit; over > 0 {
		return -min(o.Keep, over)
	}
	if o.Need <= 0 && o.Want <= 0 {
		return 0
	}
	return Grant(o.Limit, used, leased, o.Need, o.Want)
}

// Row is a counter as stored.
type Row struct {
	Key                   Key
	Used, Leased, Refused int64
}

// sortOps orders ops by key.
func sortOps(ops []Op) {
	slices.SortFunc(ops, func(a, b Op) int { return compareKeys(a.Key, b.Key) })
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "account":
		return Account, true
	case "organization":
		return Organization, true
	}
	return 0, false
}

// ParseWindow is the inverse of Window.String.
func ParseWindow(s string) (Window, bool) {
	for w := Minute; w < numWindows; w++ {
		if w.String() == s {
			return w, true
		}
	}
	return 0, false
}
