package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock is one ```sh block of the README.
type readmeBlock struct {
	line int // of the opening fence
	text string
}

// readmeSkip marks a block the paste test leaves out, on the line before
// its fence: blocks that build or start a daemon (the test starts its own)
// or need a server the test does not have.
const readmeSkip = "<!-- readme-test: skip"

// readmeBlocks returns the README's sh blocks in order, without the
// skipped ones, and how many were skipped.
func readmeBlocks(t *testing.T) ([]readmeBlock, int) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []readmeBlock
	skipped := 0
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```sh" {
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		prev := ""
		for j := start - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) != "" {
				prev = lines[j]
				break
			}
		}
		if strings.HasPrefix(prev, readmeSkip) {
			skipped++
			continue
		}
		out = append(out, readmeBlock{line: start + 1, text: strings.Join(body, "\n") + "\n"})
	}
	return out, skipped
}

// TestReadmeWalkThrough pastes every sh block of the README, in order,
// into one bash -euo pipefail against serve -demo on the embedded
// defaults, as a user following it would: each must succeed as written.
// The only change is mechanical: the defaults' loopback ports become the
// test's free ones (another run may hold the defaults).
func TestReadmeWalkThrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "dig", "swaks", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI needs %s for the README walk-through", tool)
			}
			t.Skipf("%s not installed; README walk-through not run", tool)
		}
	}
	blocks, skipped := readmeBlocks(t)
	if len(blocks) < 10 || skipped < 2 {
		t.Fatalf("found %d blocks to run and %d skipped; the README parse is broken", len(blocks), skipped)
	}
	tr := startTrial(t)
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "sendergate")); err != nil {
		t.Fatal(err)
	}
	ports := tr.ports()
	var script strings.Builder
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '>>> README block %d (line %d)'\n%s", i+1, b.line, ports.Replace(b.text))
	}
	fmt.Fprintf(&script, "echo '>>> README done'\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir = tr.dir
	cmd.Env = append(withoutEnv(os.Environ(), "SENDERGATE_"), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil || !strings.Contains(text, ">>> README done") {
		last := regexp.MustCompile(`>>> README block (\d+) \(line (\d+)\)`).FindAllStringSubmatch(text, -1)
		where := "before the first block"
		if len(last) > 0 {
			m := last[len(last)-1]
			where = fmt.Sprintf("README block %s at line %s", m[1], m[2])
		}
		t.Fatalf("the walk-through fails at %s: %v\n%s", where, err, text)
	}
	for _, want := range []string{
		"newsletter.example.com: verified",
		"mismatch (found TXT",
		"d=newsletter.example.com s=mkt1 a=rsa-sha256: pass",
		"signed message verified",
		"550 5.7.1 domain bank.example is not a sending domain",
		"news@newsletter.example.com  confirmed",
		"X-Sendergate-Envelope-From: <bounce+",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("walk-through output:\n%s", text)
	}
}
