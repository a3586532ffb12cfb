package domains

import (
	"strings"
	"time"
)

// Status is the lifecycle state of a sending domain.
type Status string

// Domain statuses.
const (
	Pending  Status = "pending"  // added, not yet verified
	Verified Status = "verified" // may send
	Failing  Status = "failing"  // was verified, records missing lately; may send during grace
	Revoked  Status = "revoked"  // failing for longer than grace; may not send
)

// CanSend reports whether mail may be sent as a domain in status s.
func CanSend(s Status) bool { return s == Verified || s == Failing }

// State is what the lifecycle needs to know about a domain.
type State struct {
	Status      Status
	VerifiedAt  *time.Time
	FirstMissAt *time.Time // first miss of the current run of misses
	// History holds the last HistoryLen results while verified or failing,
	// oldest first: 'o' all records ok, 'x' a record missed.
	History   string
	CreatedAt time.Time
}

// HistoryLen is the number of recent results kept in State.History.
const HistoryLen = 3

// missesToFail is how many misses among the last HistoryLen results turn a
// verified domain into a failing one.
const missesToFail = 2

// Outcome summarizes one check of all records of a domain.
type Outcome int

// Check outcomes.
const (
	AllOK     Outcome = iota // every record ok
	Missed                   // at least one record definitely missing or wrong
	Transient                // no definite miss, but not all ok (DNS errors)
)

// String returns "all-ok", "missed" or "transient".
func (o Outcome) String() string {
	switch o {
	case AllOK:
		return "all-ok"
	case Missed:
		return "missed"
	}
	return "transient"
}

// OutcomeOf classifies checked records: a definite miss on any record is
// Missed even when another record had a transient error; only all ok is
// AllOK; anything else (errors, unchecked, no records) is Transient.
func OutcomeOf(recs []Record) Outcome {
	ok := 0
	for _, r := range recs {
		switch r.Status {
		case StatusMissing, StatusMismatch:
			return Missed
		case StatusOK:
			ok++
		}
	}
	if ok > 0 && ok == len(recs) {
		return AllOK
	}
	return Transient
}

// Next returns the state after a check with outcome o at time now. The
// caller records an event when the returned Status differs from s.Status.
//
//   - Transient never changes anything: a DNS outage demotes no domain.
//   - AllOK verifies a pending, failing or revoked domain.
//   - Missed: a verified domain with missesToFail misses among the last
//     HistoryLen results becomes failing; a failing domain whose first miss
//     is grace or more ago becomes revoked.
//
// manual marks a check requested through the API; it follows the same rules
// (a manual miss on a verified domain counts like a background one).
func Next(s State, o Outcome, now time.Time, grace time.Duration, manual bool) State {
	_ = manual // same rules for now; kept so callers state where a result comes from
	switch o {
	case AllOK:
		return nextOK(s, now)
	case Missed:
		return nextMiss(s, now, grace)
	}
	return s
}

func nextOK(s State, now time.Time) State {
	switch s.Status {
	case Verified:
		s.History = pushHistory(s.History, 'o')
		if !strings.Contains(s.History, "x") {
			s.FirstMissAt = nil
		}
		return s
	case Pending, Revoked:
		s.VerifiedAt = &now
	}
	// From failing the domain never stopped sending: VerifiedAt stays.
	s.Status, s.History, s.FirstMissAt = Verified, "o", nil
	return s
}

func nextMiss(s State, now time.Time, grace time.Duration) State {
	switch s.Status {
	case Verified:
		s.History = pushHistory(s.History, 'x')
		// With fewer than missesToFail misses in the window, this miss is
		// the only one, so the run of misses starts now.
		if strings.Count(s.History, "x") < missesToFail {
			s.FirstMissAt = &now
			return s
		}
		if s.FirstMissAt == nil {
			s.FirstMissAt = &now
		}
		s.Status = Failing
		return revokeAfterGrace(s, now, grace)
	case Failing:
		s.History = pushHistory(s.History, 'x')
		return revokeAfterGrace(s, now, grace)
	}
	return s // pending stays pending, revoked stays revoked
}

func revokeAfterGrace(s State, now time.Time, grace time.Duration) State {
	if s.FirstMissAt != nil && !now.Before(s.FirstMissAt.Add(grace)) {
		s.Status = Revoked
	}
	return s
}

func pushHistory(h string, c byte) string {
	h += string(c)
	if len(h) > HistoryLen {
		h = h[len(h)-HistoryLen:]
	}
	return h
}

// Pending domains are checked every pendingFastEvery during their first
// pendingFastFor, then every pendingSlowEvery (at most interval).
const (
	pendingFastFor   = 10 * time.Minute
	pendingFastEvery = time.Minute
	pendingSlowEvery = 10 * time.Minute
)

// NextCheck says when the background checker should look at a domain
// again, or false for never: verified, failing and revoked domains every
// interval (a failing one also when its grace ends); pending ones often at
// first and not after CreatedAt+grace. A zero lastChecked means now.
func NextCheck(s State, lastChecked time.Time, interval, grace time.Duration) (time.Time, bool) {
	if lastChecked.IsZero() {
		return s.CreatedAt, true
	}
	switch s.Status {
	case Pending:
		deadline := s.CreatedAt.Add(grace)
		if !lastChecked.Before(deadline) {
			return time.Time{}, false
		}
		step := min(pendingSlowEvery, interval)
		if lastChecked.Before(s.CreatedAt.Add(pendingFastFor)) {
			step = min(pendingFastEvery, interval)
		}
		return earliest(lastChecked.Add(step), deadline), true
	case Failing:
		next := lastChecked.Add(interval)
		if s.FirstMissAt != nil {
			if end := s.FirstMissAt.Add(grace); end.After(lastChecked) {
				next = earliest(next, end)
			}
		}
		return next, true
	}
	return lastChecked.Add(interval), true
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
