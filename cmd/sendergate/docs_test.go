package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/config"
)

// fencedBlocks returns the fenced code blocks of a Markdown file whose
// info string is lang, in order.
func fencedBlocks(t *testing.T, path, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?ms)^```"+regexp.QuoteMeta(lang)+"\n(.*?)^```").FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDeployDocs checks docs/deploy.md: its production configuration loads
// (every key known, every value valid) with the environment file it shows,
// and its systemd unit passes systemd-analyze verify.
func TestDeployDocs(t *testing.T) {
	const doc = "../../docs/deploy.md"
	tomls := fencedBlocks(t, doc, "toml")
	if len(tomls) != 1 {
		t.Fatalf("%s has %d toml blocks, want the production configuration alone", doc, len(tomls))
	}
	path := filepath.Join(t.TempDir(), "sendergate.toml")
	if err := os.WriteFile(path, []byte(tomls[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, block := range fencedBlocks(t, doc, "sh") {
		if k, v, ok := strings.Cut(strings.TrimSpace(block), "="); ok && k == config.EnvDatabase {
			env[k] = v
		}
	}
	if env[config.EnvDatabase] == "" {
		t.Fatalf("%s shows no %s line", doc, config.EnvDatabase)
	}
	cfg, _, err := config.Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the production configuration of %s does not load: %v", doc, err)
	}
	if driver, _, _ := cfg.DatabaseDriver(); driver != "postgres" || cfg.Submission.TLSCert == "" || cfg.Relay.Upstream == "" {
		t.Errorf("not a production configuration: %s database, tls_cert %q, upstream %q", driver, cfg.Submission.TLSCert, cfg.Relay.Upstream)
	}

	units := fencedBlocks(t, doc, "ini")
	if len(units) != 1 {
		t.Fatalf("%s has %d ini blocks, want the unit alone", doc, len(units))
	}
	unit := units[0]
	for _, want := range []string{"User=sendergate", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; unit syntax not checked")
	}
	unitPath := filepath.Join(t.TempDir(), "sendergate.service")
	if err := os.WriteFile(unitPath, []byte(strings.ReplaceAll(unit, "/usr/local/bin/sendergate", binary)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unitPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
