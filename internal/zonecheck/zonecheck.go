// Package zonecheck runs BIND 9's named-checkzone on a zone-file snippet in
// tests: it wraps the snippet's lines in a zone of their own ($ORIGIN, SOA,
// NS) as a DNS provider's import does, so a test can assert that what
// sendergate prints for customers to publish is accepted by a real
// zone-file parser (RFC 1035 5.1).
package zonecheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool is the checker's path.
const Tool = "/usr/bin/named-checkzone"

// Check wraps snippet in a zone for origin (a domain name, no trailing
// dot) and fails the test when named-checkzone refuses it. Without the
// tool the test is skipped, except in CI (CI=true), where that is a
// failure.
func Check(t testing.TB, origin, snippet string) {
	t.Helper()
	if _, err := os.Stat(Tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs %s (apt-get install bind9-utils)", Tool)
		}
		t.Skipf("%s not installed; zone-file check skipped", Tool)
	}
	zone := "$ORIGIN " + origin + ".\n$TTL 3600\n" +
		"@ IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 1209600 300\n" +
		"@ IN NS ns1.example.net.\n" + snippet
	path := filepath.Join(t.TempDir(), origin+".zone")
	if err := os.WriteFile(path, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(Tool, "-k", "fail", "-n", "fail", "-i", "local", origin, path).CombinedOutput()
	if err != nil {
		t.Fatalf("named-checkzone refuses the records: %v\n%s\nzone:\n%s", err, out, zone)
	}
}
