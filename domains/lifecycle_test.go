package domains

import (
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr(t time.Time) *time.Time { return &t }

func TestNext(t *testing.T) {
	type step struct {
		at     time.Duration
		o      Outcome
		manual bool
		want   Status
	}
	verified := State{Status: Verified, VerifiedAt: ptr(t0), History: "ooo", CreatedAt: t0}
	tests := []struct {
		name          string
		start         State
		grace         time.Duration
		steps         []step
		wantHistory   string
		wantFirstMiss *time.Duration // nil: FirstMissAt must be nil
		wantVerified  *time.Duration // nil: VerifiedAt must be nil
	}{
		{name: "pending -> verified by the background check",
			start: State{Status: Pending, CreatedAt: t0}, grace: 72 * time.Hour,
			steps: []step{
				{at: time.Minute, o: Missed, want: Pending},
				{at: 2 * time.Minute, o: Transient, want: Pending},
				{at: 3 * time.Minute, o: AllOK, want: Verified},
			},
			wantHistory: "o", wantVerified: new(3 * time.Minute)},
		{name: "pending -> verified by a manual check",
			start: State{Status: Pending, CreatedAt: t0}, grace: 72 * time.Hour,
			steps:       []step{{at: 100 * time.Hour, o: AllOK, manual: true, want: Verified}},
			wantHistory: "o", wantVerified: new(100 * time.Hour)},
		{name: "verified -> failing -> revoked -> verified",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: Missed, want: Failing},
				{at: 3 * time.Hour, o: Missed, want: Failing},
				{at: 4 * time.Hour, o: Transient, want: Failing},
				{at: 72 * time.Hour, o: Missed, want: Failing},
				{at: 73 * time.Hour, o: Missed, want: Revoked},
				{at: 74 * time.Hour, o: Missed, want: Revoked},
				{at: 75 * time.Hour, o: AllOK, want: Verified},
			},
			wantHistory: "o", wantVerified: new(75 * time.Hour)},
		{name: "SERVFAIL never demotes",
			start: verified, grace: time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Transient, want: Verified},
				{at: 2 * time.Hour, o: Transient, want: Verified},
				{at: 3 * time.Hour, o: Transient, want: Verified},
			},
			wantHistory: "ooo", wantVerified: new(time.Duration(0))},
		{name: "failing stays failing on transient errors past grace",
			start: verified, grace: 2 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: Missed, want: Failing},
				{at: 10 * time.Hour, o: Transient, want: Failing},
			},
			wantHistory: "oxx", wantFirstMiss: new(time.Hour), wantVerified: new(time.Duration(0))},
		{name: "failing -> verified keeps VerifiedAt and resets history",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: Missed, want: Failing},
				{at: 3 * time.Hour, o: AllOK, want: Verified},
				{at: 4 * time.Hour, o: Missed, want: Verified},
			},
			wantHistory: "ox", wantFirstMiss: new(4 * time.Hour), wantVerified: new(time.Duration(0))},
		{name: "two misses out of three, apart",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: AllOK, want: Verified},
				{at: 3 * time.Hour, o: Missed, want: Failing},
			},
			wantHistory: "xox", wantFirstMiss: new(time.Hour), wantVerified: new(time.Duration(0))},
		{name: "a miss that left the window does not count",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: AllOK, want: Verified},
				{at: 3 * time.Hour, o: AllOK, want: Verified},
				{at: 4 * time.Hour, o: Missed, want: Verified},
			},
			wantHistory: "oox", wantFirstMiss: new(4 * time.Hour), wantVerified: new(time.Duration(0))},
		{name: "recovered window clears the first miss",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: AllOK, want: Verified},
				{at: 3 * time.Hour, o: AllOK, want: Verified},
				{at: 4 * time.Hour, o: AllOK, want: Verified},
			},
			wantHistory: "ooo", wantVerified: new(time.Duration(0))},
		{name: "manual misses count like background ones",
			start: verified, grace: 72 * time.Hour,
			steps: []step{
				{at: time.Minute, o: Missed, manual: true, want: Verified},
				{at: 2 * time.Minute, o: Missed, manual: true, want: Failing},
			},
			wantHistory: "oxx", wantFirstMiss: new(time.Minute), wantVerified: new(time.Duration(0))},
		{name: "grace shorter than the interval revokes at once",
			start: verified, grace: 30 * time.Minute,
			steps: []step{
				{at: 1 * time.Hour, o: Missed, want: Verified},
				{at: 2 * time.Hour, o: Missed, want: Revoked},
			},
			wantHistory: "oxx", wantFirstMiss: new(time.Hour), wantVerified: new(time.Duration(0))},
		{name: "revoked -> verified by a manual check",
			start: State{Status: Revoked, VerifiedAt: ptr(t0), FirstMissAt: ptr(t0), History: "xxx", CreatedAt: t0},
			grace: 72 * time.Hour,
			steps: []step{
				{at: 100 * time.Hour, o: Transient, manual: true, want: Revoked},
				{at: 101 * time.Hour, o: AllOK, manual: true, want: Verified},
			},
			wantHistory: "o", wantVerified: new(101 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start
			for i, st := range tt.steps {
				s = Next(s, st.o, at(st.at), tt.grace, st.manual)
				if s.Status != st.want {
					t.Fatalf("step %d (%v at +%v): status %q, want %q (state %+v)", i, st.o, st.at, s.Status, st.want, s)
				}
			}
			if s.History != tt.wantHistory {
				t.Errorf("History = %q, want %q", s.History, tt.wantHistory)
			}
			checkTime(t, "FirstMissAt", s.FirstMissAt, tt.wantFirstMiss)
			checkTime(t, "VerifiedAt", s.VerifiedAt, tt.wantVerified)
			if !s.CreatedAt.Equal(tt.start.CreatedAt) {
				t.Errorf("CreatedAt changed to %v", s.CreatedAt)
			}
		})
	}
}

func checkTime(t *testing.T, what string, got *time.Time, want *time.Duration) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s = %v, want nil", what, *got)
	case want != nil && (got == nil || !got.Equal(at(*want))):
		t.Errorf("%s = %v, want %v", what, got, at(*want))
	}
}

func TestCanSend(t *testing.T) {
	tests := []struct {
		status Status
		want   bool
	}{
		{Pending, false}, {Verified, true}, {Failing, true}, {Revoked, false}, {Status("bogus"), false},
	}
	for _, tt := range tests {
		if got := CanSend(tt.status); got != tt.want {
			t.Errorf("CanSend(%q) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestNextCheck(t *testing.T) {
	const interval, grace = time.Hour, 72 * time.Hour
	tests := []struct {
		name     string
		state    State
		last     time.Time
		interval time.Duration
		want     time.Time
		wantOK   bool
	}{
		{name: "never checked", state: State{Status: Pending, CreatedAt: t0}, want: t0, wantOK: true},
		{name: "pending, first minutes", state: State{Status: Pending, CreatedAt: t0}, last: at(2 * time.Minute),
			want: at(3 * time.Minute), wantOK: true},
		{name: "pending, fast step bounded by interval", state: State{Status: Pending, CreatedAt: t0}, last: at(2 * time.Minute),
			interval: 30 * time.Second, want: at(2*time.Minute + 30*time.Second), wantOK: true},
		{name: "pending, later", state: State{Status: Pending, CreatedAt: t0}, last: at(30 * time.Minute),
			want: at(40 * time.Minute), wantOK: true},
		{name: "pending, last check at the end of grace", state: State{Status: Pending, CreatedAt: t0},
			last: at(grace - 5*time.Minute), want: at(grace), wantOK: true},
		{name: "pending after grace", state: State{Status: Pending, CreatedAt: t0}, last: at(grace)},
		{name: "verified", state: State{Status: Verified, CreatedAt: t0}, last: at(5 * time.Hour),
			want: at(6 * time.Hour), wantOK: true},
		{name: "failing, grace ends before the interval", state: State{Status: Failing, CreatedAt: t0, FirstMissAt: ptr(t0)},
			last: at(grace - 30*time.Minute), want: at(grace), wantOK: true},
		{name: "failing, grace already over", state: State{Status: Failing, CreatedAt: t0, FirstMissAt: ptr(t0)},
			last: at(grace + time.Hour), want: at(grace + 2*time.Hour), wantOK: true},
		{name: "revoked", state: State{Status: Revoked, CreatedAt: t0}, last: at(100 * time.Hour),
			want: at(101 * time.Hour), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv := tt.interval
			if iv == 0 {
				iv = interval
			}
			got, ok := NextCheck(tt.state, tt.last, iv, grace)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Fatalf("NextCheck = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
