package limits_test

import (
	"testing"
	"time"

	"github.com/sendergate/sendergate/limits"
)

func TestWindowStart(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 3, 14, 15, 9, 26, 535, paris) // 14:09:26 UTC
	tests := []struct {
		w    limits.Window
		want time.Time
	}{
		{w: limits.Minute, want: time.Date(2026, 3, 14, 14, 9, 0, 0, time.UTC)},
		{w: limits.Hour, want: time.Date(2026, 3, 14, 14, 0, 0, 0, time.UTC)},
		{w: limits.Day, want: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.w.String(), func(t *testing.T) {
			got := tt.w.Start(at)
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("Start = %v, want %v (UTC)", got, tt.want)
			}
			if end := got.Add(tt.w.Length()); !end.After(at) {
				t.Errorf("window %v + %v does not hold %v", got, tt.w.Length(), at)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	d := limits.Defaults{Org: limits.Values{0, 1000, 10000}, Account: limits.Values{10, 100, 0}, NewAccountPerDay: 50, NewAccountAge: 7 * 24 * time.Hour}
	old := now.Add(-30 * 24 * time.Hour)
	young := now.Add(-time.Hour)
	tests := []struct {
		name      string
		d         limits.Defaults
		org, acct *limits.Values
		created   time.Time
		wantOrg   limits.Values
		wantAcct  limits.Values
	}{
		{name: "defaults", d: d, created: old, wantOrg: limits.Values{0, 1000, 10000}, wantAcct: limits.Values{10, 100, 0}},
		{name: "stored limits replace the defaults whole", d: d, org: &limits.Values{5, 0, 0}, acct: &limits.Values{0, 7, 0}, created: old,
			wantOrg: limits.Values{5, 0, 0}, wantAcct: limits.Values{0, 7, 0}},
		{name: "a new account gets the new-account day limit", d: d, created: young, wantOrg: limits.Values{0, 1000, 10000}, wantAcct: limits.Values{10, 100, 50}},
		{name: "the tighter day limit wins", d: d, acct: &limits.Values{0, 0, 20}, created: young, wantOrg: d.Org, wantAcct: limits.Values{0, 0, 20}},
		{name: "a stored none does not lift the guard", d: d, acct: &limits.Values{}, created: young, wantOrg: d.Org, wantAcct: limits.Values{0, 0, 50}},
		{name: "old enough", d: d, created: now.Add(-7 * 24 * time.Hour), wantOrg: d.Org, wantAcct: limits.Values{10, 100, 0}},
		{name: "no guard configured", d: limits.Defaults{NewAccountAge: time.Hour}, created: young, wantAcct: limits.Values{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, a := tt.d.Resolve(tt.org, tt.acct, tt.created, now)
			if o != tt.wantOrg || a != tt.wantAcct {
				t.Errorf("Resolve = %v, %v; want %v, %v", o, a, tt.wantOrg, tt.wantAcct)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	tests := []struct {
		name                            string
		limit, used, leased, need, want int64
		grant                           int64
	}{
		{name: "what is wanted, well under half the free budget", limit: 100, need: 1, want: 3, grant: 3},
		{name: "beyond need at most half of what is free", limit: 100, used: 20, need: 1, want: 80, grant: 40},
		{name: "need is granted even above half", limit: 100, used: 90, need: 8, want: 8, grant: 8},
		{name: "never more than free", limit: 100, used: 60, leased: 39, need: 1, want: 10, grant: 1},
		{name: "less free than needed: nothing", limit: 100, used: 60, leased: 38, need: 3, want: 3},
		{name: "limit reached", limit: 100, used: 100, need: 1, want: 1},
		{name: "limit lowered below the count", limit: 10, used: 20, need: 1, want: 5},
		{name: "resize at a sync: half of free", limit: 100, used: 50, leased: 10, want: 100, grant: 20},
		{name: "the last one only to a need", limit: 100, used: 99, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if g := limits.Grant(tt.limit, tt.used, tt.leased, tt.need, tt.want); g != tt.grant {
				t.Errorf("Grant(%d, %d, %d, %d, %d) = %d, want %d", tt.limit, tt.used, tt.leased, tt.need, tt.want, g, tt.grant)
			}
		})
	}
}

func TestRefusedText(t *testing.T) {
	now := time.Date(2026, 3, 14, 14, 9, 18, 0, time.UTC)
	tests := []struct {
		name string
		r    limits.Refused
		want string
	}{
		{name: "account per minute",
			r:    limits.Refused{Kind: limits.Account, Name: "app@acme", Window: limits.Minute, Limit: 5, Frees: time.Date(2026, 3, 14, 14, 10, 0, 0, time.UTC)},
			want: "sending limit reached for account app@acme: 5 recipients per minute; it frees up at 2026-03-14 14:10:00 UTC (in 42s)"},
		{name: "organization per day",
			r:    limits.Refused{Kind: limits.Organization, Name: "acme", Window: limits.Day, Limit: 10000, Frees: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)},
			want: "sending limit reached for organization acme: 10000 recipients per day; it frees up at 2026-03-15 00:00:00 UTC (in 9h50m42s)"},
		{name: "unavailable",
			r:    limits.Refused{Kind: limits.Account, Name: "app@acme", Window: limits.Hour, Limit: 100, Unavailable: true},
			want: "the sending limit of account app@acme cannot be checked right now; try again in a few minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Text(now); got != tt.want {
				t.Errorf("Text =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}
