package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs `sendergate demo`, what `make demo` runs after building,
// and checks that it walks through to a verified signature with nothing
// else set up.
func TestDemo(t *testing.T) {
	cmd := exec.Command(binary, "demo")
	cmd.Dir = t.TempDir()
	cmd.Env = append(withoutEnv(os.Environ(), "SENDERGATE_"), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sendergate demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"mkt1._domainkey.newsletter.example.com.\t3600\tIN\tCNAME\tmkt1.",
		"has a TXT record", // the hint for the broken record
		"status verified",
		"250 2.0.0 OK: accepted as ",
		"DKIM-Signature: ",
		"X-Sendergate-Envelope-From: <bounce+",
		"DKIM d=newsletter.example.com s=mkt1 a=rsa-sha256: pass",
		"signed message verified",
		"550 5.7.1 domain bank.example is not a sending domain of your organization",
		"550 5.7.1 domain newsletter.example.com is not granted to this SMTP account",
		"demo done in",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
	// Its data directory is removed afterwards.
	if m := regexp.MustCompile(`demo mode in (\S+)`).FindStringSubmatch(text); m == nil {
		t.Error("the demo does not say where it runs")
	} else if _, err := os.Stat(m[1]); err == nil {
		t.Errorf("the demo left %s behind", m[1])
	}
}

// TestDemoLoopbackOnly checks that serve -demo refuses a listener another
// machine could reach, naming it.
func TestDemoLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sg.toml")
	if err := os.WriteFile(path, []byte("[admin]\nlisten = \"0.0.0.0:8025\"\n[relay]\nupstream = \"mx.example.com:25\"\n[bounce]\nlisten = \":2525\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "-demo", "-config", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want 2\n%s", err, out)
	}
	for _, want := range []string{"loopback only", `admin.listen "0.0.0.0:8025"`, `relay.upstream "mx.example.com:25"`, `bounce.listen ":2525"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("serve -demo created data_dir although it refused to start")
	}
}
