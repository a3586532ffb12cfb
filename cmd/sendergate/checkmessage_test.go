package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckMessage sends through a serve -demo daemon and checks the
// outbox files with check-message: through the customer DNS (-resolver),
// through the configured zone alone (a sandbox message), after a
// tampering, saved with LF line endings, and unsigned.
func TestCheckMessage(t *testing.T) {
	tr := startTrial(t)
	tr.must(t, "orgs", "add", "acme")
	pass := strings.TrimSpace(tr.must(t, "accounts", "add", "-org", "acme", "-q", "app"))
	tr.must(t, "domains", "add", "-org", "acme", "-return-path", "bounces", "example.net")
	tr.must(t, "domains", "verify", "-org", "acme", "example.net")

	send := func(from string) string {
		t.Helper()
		before, _ := filepath.Glob(filepath.Join(tr.dir, "data", "outbox", "*.eml"))
		if err := submit(t, tr.smtp, "app@acme", pass, from, "someone@example.org", "hello"); err != nil {
			t.Fatalf("send as %s: %v", from, err)
		}
		after, _ := filepath.Glob(filepath.Join(tr.dir, "data", "outbox", "*.eml"))
		for _, f := range after {
			if !contains(before, f) {
				return f
			}
		}
		t.Fatal("no new outbox file")
		return ""
	}
	custom := send("news@example.net")
	sandbox := send("news@acme.sandbox.sg.localhost")

	out, errs, code := tr.sg(t, nil, "check-message", "-resolver", tr.demoDNS, custom)
	if code != 0 || !strings.Contains(out, "DKIM d=example.net s=sg1 a=rsa-sha256: pass") ||
		!strings.Contains(out, "envelope sender  bounce+") || !strings.Contains(out, "@bounces.example.net") ||
		!strings.Contains(out, "signed message verified") {
		t.Errorf("check-message -resolver: exit %d\n%s%s", code, out, errs)
	}
	// No -resolver: the key of a sandbox domain is in the configured zone.
	out, errs, code = tr.sg(t, nil, "check-message", sandbox)
	if code != 0 || !strings.Contains(out, "d=acme.sandbox.sg.localhost s=sg1") || !strings.Contains(out, "signed message verified") {
		t.Errorf("check-message through the configured zone: exit %d\n%s%s", code, out, errs)
	}

	data, err := os.ReadFile(custom)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lf := write("lf.eml", bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
	if out, errs, code := tr.sg(t, nil, "check-message", "-resolver", tr.demoDNS, lf); code != 0 || !strings.Contains(out, ": pass") {
		t.Errorf("LF line endings: exit %d\n%s%s", code, out, errs)
	}
	tampered := write("tampered.eml", bytes.Replace(data, []byte("Subject: hello"), []byte("Subject: hellO"), 1))
	if out, _, code := tr.sg(t, nil, "check-message", "-resolver", tr.demoDNS, tampered); code != 1 || !strings.Contains(out, ": fail: ") || strings.Contains(out, "verified") {
		t.Errorf("tampered: exit %d\n%s", code, out)
	}
	unsigned := write("unsigned.eml", []byte("From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"))
	if out, _, code := tr.sg(t, nil, "check-message", unsigned); code != 1 || !strings.Contains(out, "unsigned") {
		t.Errorf("unsigned: exit %d\n%s", code, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
