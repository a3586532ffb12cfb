package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrorsInOnePassThroughBinary checks what a user sees from a
// config with a typo, a value of the wrong type and an invalid value: one
// line naming all three, and exit status 2, before anything starts.
func TestConfigErrorsInOnePassThroughBinary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	file := "[submission]\nlistn = \":587\"\nmax_recipients = 0\n[dns]\ncheck_qps = \"fast\"\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "-config", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want 2\n%s", err, out)
	}
	text := strings.TrimSpace(string(out))
	if strings.Contains(text, "\n") {
		t.Errorf("more than one line:\n%s", text)
	}
	for _, want := range []string{"submission.listn: unknown key", "submission.max_recipients: must be at least 1", "dns.check_qps:"} {
		if !strings.Contains(text, want) {
			t.Errorf("the line lacks %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a refused config still created data_dir")
	}
}
