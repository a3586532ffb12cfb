package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/bench/internal/seeddb"
)

func TestParseCPU(t *testing.T) {
	tests := []struct {
		stat string
		want time.Duration
		err  bool
	}{
		{"1234 (sendergate) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3 * time.Second, false},
		// A command name with spaces and a parenthesis.
		{"7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond, false},
		{"7 no parens", 0, true},
		{"7 (x) S 1 2", 0, true},
	}
	for _, tt := range tests {
		got, err := parseCPU(tt.stat, 100)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseCPU(%q) = %v, %v; want %v, error %v", tt.stat, got, err, tt.want, tt.err)
		}
	}
}

func TestParseRSS(t *testing.T) {
	tests := []struct {
		status string
		want   int64
		err    bool
	}{
		{"Name:\tsendergate\nVmPeak:\t  99 kB\nVmRSS:\t  123456 kB\nThreads: 9\n", 123456 * 1024, false},
		{"Name:\tx\n", 0, true},
		{"VmRSS:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseRSS(strings.NewReader(tt.status))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseRSS(%q) = %d, %v; want %d, error %v", tt.status, got, err, tt.want, tt.err)
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarize(ds)
	if s.N != 100 || s.P50 != 50 || s.P99 != 99 || s.Max != 100 {
		t.Errorf("summarize(1..100 ms) = %+v", s)
	}
	if s := summarize(nil); s.N != 0 || s.String() != "none" {
		t.Errorf("summarize(nil) = %+v", s)
	}
	if s := summarize([]time.Duration{7 * time.Millisecond}); s.P50 != 7 || s.P99 != 7 {
		t.Errorf("summarize(one) = %+v", s)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@127.0.0.1:5432/db?sslmode=disable": "postgres://u:***@127.0.0.1:5432/db?sslmode=disable",
		"postgres://u@127.0.0.1/db":                             "postgres://u@127.0.0.1/db",
		"sqlite:/tmp/x.db":                                      "sqlite:/tmp/x.db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHarness runs the whole harness against the real binary on a small
// seeded SQLite database shared by two instances: every figure comes out,
// the message is accepted, every DNS answer carries the DKIM key, and each
// change made through the first instance is enforced by the second (the
// rotated password's polling never locks the harness out).
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts sendergate")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendergate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sendergate/sendergate/cmd/sendergate").CombinedOutput(); err != nil {
		t.Fatalf("build sendergate: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "db", "sendergate.db")
	ctx := context.Background()
	if _, err := seeddb.Seed(ctx, "sqlite", db, seeddb.Options{Orgs: 6, DomainsPerOrg: 4, Keys: 1}); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-bin", bin, "-database", "sqlite:" + db, "-orgs", "6", "-domains", "4", "-second",
		"-idle", "1s", "-adds", "3", "-writes", "3", "-dns", "200", "-auth", "5", "-prop", "1", "-start-limit", "1m"})
	if err != nil {
		t.Fatal(err)
	}
	o.work = filepath.Join(dir, "work")
	rep, err := run(ctx, o, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("harness errors: %v", rep.Errors)
	}
	switch {
	case rep.ColdStart <= 0 || rep.ColdStartB <= 0 || rep.RSSLoaded <= 0 || rep.RSSAfter <= 0:
		t.Errorf("start figures missing: %+v", rep)
	case !strings.HasPrefix(rep.Message, "250"):
		t.Errorf("message: %q, want 250", rep.Message)
	case rep.DNS.N != 200 || rep.DNSBad != 0:
		t.Errorf("DNS: %s, %d bad", rep.DNS, rep.DNSBad)
	case rep.Auth.N != 5 || rep.AddDomain.N != 3 || rep.SetAccess.N != 3 || rep.Rotate.N != 3 || rep.Adds.N != 3:
		t.Errorf("counts: auth %d, writes %d/%d/%d, adds %d", rep.Auth.N, rep.AddDomain.N, rep.SetAccess.N, rep.Rotate.N, rep.Adds.N)
	case rep.PropRotate.N != 1 || rep.PropDomain.N != 1 || rep.PropAccess.N != 1:
		t.Errorf("propagation: %s / %s / %s", rep.PropRotate, rep.PropDomain, rep.PropAccess)
	}
	var b strings.Builder
	rep.markdown(&b)
	if !strings.Contains(b.String(), "| cold start to a loaded snapshot < 20 s |") {
		t.Errorf("report:\n%s", b.String())
	}
}
