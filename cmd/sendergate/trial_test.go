package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/internal/logtest"
)

// trial is `sendergate serve -demo` running in its own directory on the
// embedded defaults, except for the listen ports (free ones, written to
// ./sendergate.toml so that every command run in dir finds them, as on a
// user's machine the defaults are found).
type trial struct {
	*instance
	demoDNS string
}

// defaultAddrs are the embedded defaults' loopback addresses, which the
// tests replace with the trial's ports in the commands they run.
var defaultAddrs = []string{"127.0.0.1:8025", "127.0.0.1:1587", "127.0.0.1:5353", "127.0.0.1:5354"}

// startTrial starts serve -demo and waits until it is healthy.
func startTrial(t *testing.T, extraArgs ...string) *trial {
	t.Helper()
	dir := t.TempDir()
	in := &instance{dir: dir, log: &logtest.Buffer{}}
	tr := &trial{instance: in}
	ports := freeUDPTCPPorts(t, 5)
	in.admin, in.smtp, in.dns, tr.demoDNS, in.bounce = ports[0], ports[1], ports[2], ports[3], ports[4]
	cfg := fmt.Sprintf("[submission]\nlisten = %q\n[admin]\nlisten = %q\npublic_url = \"http://%s\"\n[dns]\nlisten = %q\n[bounce]\nlisten = %q\n",
		in.smtp, in.admin, in.admin, in.dns, in.bounce)
	if err := os.WriteFile(filepath.Join(dir, "sendergate.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	in.launch(t, withoutEnv(os.Environ(), "SENDERGATE_"), append([]string{"serve", "-demo", "-demo-dns", tr.demoDNS}, extraArgs...)...)
	return tr
}

// ports maps each default address to the trial's.
func (tr *trial) ports() *strings.Replacer {
	return strings.NewReplacer(defaultAddrs[0], tr.admin, defaultAddrs[1], tr.smtp, defaultAddrs[2], tr.dns,
		"-p 5353", "-p "+portOf(tr.dns), defaultAddrs[3], tr.demoDNS, "-p 5354", "-p "+portOf(tr.demoDNS))
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// sg runs a sendergate command in the trial's directory and returns its
// stdout, stderr and exit status.
func (tr *trial) sg(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = tr.dir
	cmd.Env = append(withoutEnv(os.Environ(), "SENDERGATE_"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sendergate %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs a command that has to succeed and returns its stdout.
func (tr *trial) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := tr.sg(t, nil, args...)
	if code != 0 {
		t.Fatalf("sendergate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// withoutEnv drops the variables starting with prefix (a developer's own
// SENDERGATE_ADMIN_KEY must not leak into the tests).
func withoutEnv(env []string, prefix string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// freeUDPTCPPorts returns n loopback addresses free for both TCP and UDP
// a moment ago (the zone and the customer DNS use both).
func freeUDPTCPPorts(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := freeLoopbackPorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}
