package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/internal/zonecheck"
)

// TestClientCommands drives a serve -demo daemon with the client commands
// a user types, and checks what they print and their exit status.
func TestClientCommands(t *testing.T) {
	tr := startTrial(t)

	out := tr.must(t, "orgs", "add", "acme")
	if !strings.Contains(out, "acme.sandbox.sg.localhost") {
		t.Errorf("orgs add: %q", out)
	}
	pass := strings.TrimSpace(tr.must(t, "accounts", "add", "-org", "acme", "-q", "billing-app"))
	if len(pass) < 26 || strings.ContainsAny(pass, " \n\t") {
		t.Errorf("accounts add -q printed %q, want the password alone", pass)
	}
	if out := tr.must(t, "accounts", "-org", "acme"); !strings.Contains(out, "billing-app@acme") || strings.Contains(out, pass) {
		t.Errorf("accounts list: %q (it must not show the password)", out)
	}
	key := strings.TrimSpace(tr.must(t, "keys", "add", "-org", "acme", "-q"))
	if !strings.HasPrefix(key, "sgk_") {
		t.Errorf("keys add -q printed %q", key)
	}

	out = tr.must(t, "domains", "add", "-org", "acme", "-return-path", "mailing", "-tracking", "click",
		"-selector", "mkt1", "-algorithm", "ed25519", "-dmarc", "reject", "-dmarc-rua", "dmarc@example.com", "newsletter.example.com")
	for _, want := range []string{"mkt1._domainkey.newsletter.example.com.\t3600\tIN\tCNAME\tmkt1.", "mailing.newsletter.example.com.", "click.newsletter.example.com.\t3600\tIN\tCNAME\ttrack.sg.localhost.", "_dmarc.newsletter.example.com."} {
		if !strings.Contains(out, want) {
			t.Errorf("domains add lacks %q:\n%s", want, out)
		}
	}
	// Flags may follow the positional arguments, as users type them.
	out = tr.must(t, "domains", "verify", "newsletter.example.com", "-org", "acme")
	if !strings.HasPrefix(out, "newsletter.example.com: verified\n") {
		t.Errorf("domains verify (demo DNS publishes the records):\n%s", out)
	}
	out = tr.must(t, "domains", "access", "-org", "acme", "newsletter.example.com", "billing-app")
	if !strings.Contains(out, "only billing-app") {
		t.Errorf("domains access: %q", out)
	}

	show := tr.must(t, "domains", "show", "-org", "acme", "newsletter.example.com")
	for _, want := range []string{"verified", "only billing-app", "; dkim ", "ok", "; DKIM key signing: mkt1 (ed25519)", "; DKIM key next: mkt1b (ed25519)", "; rotation: possible now"} {
		if !strings.Contains(show, want) {
			t.Errorf("domains show lacks %q:\n%s", want, show)
		}
	}
	zonecheck.Check(t, "newsletter.example.com", show)

	var d domainJSON
	if err := json.Unmarshal([]byte(tr.must(t, "domains", "show", "-org", "acme", "-json", "newsletter.example.com")), &d); err != nil || d.Status != "verified" || d.DKIMAlgorithm != "ed25519" {
		t.Errorf("domains show -json: %+v %v", d, err)
	}
	list := tr.must(t, "domains", "-org", "acme")
	if !strings.Contains(list, "newsletter.example.com") || !strings.Contains(list, "5/5") {
		t.Errorf("domains list:\n%s", list)
	}

	// An organization key acts in its own organization only.
	tr.must(t, "orgs", "add", "other")
	env := []string{"SENDERGATE_ADMIN_KEY=" + key}
	if out, errs, code := tr.sg(t, env, "domains", "-org", "acme"); code != 0 || !strings.Contains(out, "newsletter.example.com") {
		t.Errorf("with the organization key: exit %d %q %q", code, out, errs)
	}
	if _, errs, code := tr.sg(t, env, "domains", "-org", "other"); code != 1 || !strings.Contains(errs, "404 not_found") {
		t.Errorf("another organization with an organization key: exit %d %q", code, errs)
	}

	// Failures name what is wrong and exit non-zero.
	for _, tt := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{nil, []string{"domains", "show", "-org", "acme", "nope.example"}, 1, `404 not_found (domain): domain "nope.example" not found`},
		{nil, []string{"domains", "add", "-org", "acme", "-selector", "x", "bad.example"}, 1, "400 invalid (dkim_selector)"},
		{nil, []string{"domains", "list"}, 2, "-org ORG is required"},
		{nil, []string{"domains", "frobnicate", "-org", "acme"}, 2, `unknown verb "frobnicate"`},
		{[]string{"SENDERGATE_ADMIN_KEY=wrong-key-wrong-key"}, []string{"orgs"}, 1, "401 unauthorized"},
		{nil, []string{"orgs", "-api", "http://127.0.0.1:1"}, 1, "cannot reach the admin API at http://127.0.0.1:1"},
	} {
		_, errs, code := tr.sg(t, tt.env, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("sendergate %s: exit %d %q, want %d with %q", strings.Join(tt.args, " "), code, errs, tt.code, tt.want)
		}
	}
	// Without a key anywhere the command says where it looked.
	if err := os.Rename(filepath.Join(tr.dir, "data", "admin.key"), filepath.Join(tr.dir, "admin.key.moved")); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := tr.sg(t, nil, "orgs"); code != 1 || !strings.Contains(errs, "SENDERGATE_ADMIN_KEY") || !strings.Contains(errs, "admin.key") {
		t.Errorf("no key: exit %d %q", code, errs)
	}
}
