// Package bindtest runs a private BIND 9 named as a secondary of a zone,
// for tests that prove a standard secondary follows sendergate's zone
// (AXFR, NOTIFY, IXFR) and accepts its copy (named-checkzone). The Debian
// packages are bind9 (/usr/sbin/named) and bind9-utils
// (/usr/bin/named-checkzone); .ci/run installs them.
package bindtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Tool returns the path of a BIND 9 program (named, named-checkzone), or
// skips the test when it is missing (fails instead when CI=true).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (Debian packages bind9 and bind9-utils) is required in CI", name)
	}
	t.Skipf("%s not installed: apt-get install bind9 bind9-utils to run the BIND 9 secondary test", name)
	return ""
}

// Log collects a process's output for failure messages.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Log) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Log) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreePort returns a loopback port free for both UDP and TCP at the time
// of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}

const namedConf = `options {
	directory "%[1]s";
	pid-file none;
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
zone "%[4]s" {
	type secondary;
	primaries { 127.0.0.1 port %[3]d; };
	file "%[1]s/%[4]s.db";
	masterfile-format text;
	allow-notify { 127.0.0.1; };
	request-ixfr yes;
};
`

// Secondary is a running named carrying one zone as a secondary.
type Secondary struct {
	Port     int    // where named listens (UDP and TCP, 127.0.0.1)
	ZoneFile string // its copy of the zone, in text format
	Log      *Log
}

// Start runs named as a secondary of zone served on 127.0.0.1:primaryPort,
// listening on port, and stops it when the test ends (printing its log if
// the test failed).
func Start(t testing.TB, zone string, port, primaryPort int) *Secondary {
	t.Helper()
	named := Tool(t, "named")
	dir := t.TempDir()
	conf := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, namedConf, dir, port, primaryPort, zone), 0o644); err != nil {
		t.Fatal(err)
	}
	// -g: foreground, log to stderr; -n 1: one worker (two cores here). Run
	// as root (CI), named keeps the uid it was started with when -u is not
	// given, so it can write the temporary directory.
	cmd := exec.Command(named, "-g", "-n", "1", "-c", conf)
	log := &Log{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start named: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("named log:\n%s", log.String())
		}
	})
	return &Secondary{Port: port, ZoneFile: filepath.Join(dir, zone+".db"), Log: log}
}

// Ask sends a non-recursive query to the secondary; nil on error.
func (s *Secondary) Ask(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", s.Port))
	if err != nil {
		return nil
	}
	return r
}

// CheckZone runs named-checkzone with every check fatal (integrity: in-zone
// NS and MX targets have addresses; NS and MX targets are names) on the
// secondary's copy of zone, once named has written it, and fails the test
// when it refuses it.
func (s *Secondary) CheckZone(t testing.TB, zone string) {
	t.Helper()
	checkzone := Tool(t, "named-checkzone")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(s.ZoneFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not write its copy of %s", zone)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command(checkzone, "-i", "full", "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail",
		zone, s.ZoneFile).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("OK")) {
		zf, _ := os.ReadFile(s.ZoneFile)
		t.Fatalf("named-checkzone refuses the transferred zone: %v\n%s\nzone file:\n%s", err, out, zf)
	}
}
