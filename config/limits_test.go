package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(l *Limits)
		wantKeys []string
	}{
		{name: "defaults: no limits, a week for new accounts", mutate: func(*Limits) {}},
		{name: "all set", mutate: func(l *Limits) {
			*l = Limits{OrgPerMinute: 1000, OrgPerHour: 20000, OrgPerDay: 200000, AccountPerMinute: 100, AccountPerHour: 1000,
				AccountPerDay: 10000, NewAccountPerDay: 500, NewAccountAge: Duration{72 * time.Hour}}
		}},
		{name: "negative limits", mutate: func(l *Limits) { l.OrgPerHour, l.AccountPerMinute = -1, -5 },
			wantKeys: []string{"limits.org_per_hour", "limits.account_per_minute"}},
		{name: "absurd limit", mutate: func(l *Limits) { l.NewAccountPerDay = 2_000_000_000_000 },
			wantKeys: []string{"limits.new_account_per_day"}},
		{name: "negative age", mutate: func(l *Limits) { l.NewAccountAge = Duration{-time.Hour} },
			wantKeys: []string{"limits.new_account_age"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c.Limits)
			err := c.Validate()
			var got []string
			var errs Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					var fe *FieldError
					if errors.As(e, &fe) {
						got = append(got, fe.Key)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("Validate reported %v (%v), want %v", got, err, tt.wantKeys)
			}
		})
	}
}

func TestLimitsFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.toml")
	if err := os.WriteFile(path, []byte("[limits]\naccount_per_hour = 100\nnew_account_per_day = 50\nnew_account_age = \"72h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{AccountPerHour: 100, NewAccountPerDay: 50, NewAccountAge: Duration{72 * time.Hour}}
	if c.Limits != want {
		t.Errorf("limits = %+v, want %+v", c.Limits, want)
	}
	if err := os.WriteFile(path, []byte("[limits]\naccount_per_hour = \"lots\"\norg_per_week = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = Load(path, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "limits.account_per_hour") || !strings.Contains(err.Error(), "limits.org_per_week") {
		t.Errorf("bad [limits]: %v, want both keys named", err)
	}
}
