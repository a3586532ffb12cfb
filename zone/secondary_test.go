package zone

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// bindTool returns the path of a BIND 9 program (named, named-checkzone),
// or skips the test when it is missing (fails instead when CI=true). The
// Debian packages are bind9 (/usr/sbin/named) and bind9-utils
// (/usr/bin/named-checkzone).
func bindTool(t *testing.T, name string) string {
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

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort returns a loopback port free for both UDP and TCP at the time of
// the call.
func freePort(t *testing.T) int {
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
zone "sg.localhost" {
	type secondary;
	primaries { 127.0.0.1 port %[3]d; };
	file "%[1]s/sg.localhost.db";
	masterfile-format text;
	allow-notify { 127.0.0.1; };
	request-ixfr yes;
};
`

// startNamed runs a private BIND 9 named as a secondary of the zone served
// on primaryPort, listening on port, and stops it when the test ends. It
// returns the directory holding the zone file and named's log.
func startNamed(t *testing.T, port, primaryPort int) (string, *syncBuffer) {
	t.Helper()
	named := bindTool(t, "named")
	dir := t.TempDir()
	conf := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, namedConf, dir, port, primaryPort), 0o644); err != nil {
		t.Fatal(err)
	}
	// -g: foreground, log to stderr; -n 1: one worker (two cores here). Run
	// as root (CI), named keeps the uid it was started with when -u is not
	// given, so it can write the temporary directory.
	cmd := exec.Command(named, "-g", "-n", "1", "-c", conf)
	log := &syncBuffer{}
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
	return dir, log
}

// askNamed sends a non-recursive query to the secondary; nil on error.
func askNamed(port int, name string, qtype uint16) *dns.Msg {
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(query(name, qtype), fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil
	}
	return r
}

// TestBINDSecondary runs a real BIND 9 secondary of the zone: it must load
// the zone (named-checkzone passes on its copy) and follow a change within
// seconds, by NOTIFY and IXFR, although the SOA refresh is an hour.
func TestBINDSecondary(t *testing.T) {
	checkzone := bindTool(t, "named-checkzone")
	bindTool(t, "named")
	namedPort := freePort(t)
	s, err := New(Config{
		Zone: testZone, Nameservers: []string{"ns1.sg.localhost"},
		AllowTransfer:       []string{"127.0.0.1"},
		Notify:              []string{fmt.Sprintf("127.0.0.1:%d", namedPort)},
		NameserverAddresses: map[string][]string{"ns1.sg.localhost": {"127.0.0.1"}},
		BounceMX:            "mx.sg.localhost", BounceMXAddresses: []string{"127.0.0.1", "::1"},
		Refresh: time.Hour, // without NOTIFY the secondary would not look again within the test
	})
	if err != nil {
		t.Fatal(err)
	}
	s.notifyBackoff = 100 * time.Millisecond // named may still be starting when the first NOTIFY goes out
	// The records the daemon generates: no address for ns1 or mx among them,
	// those come from the configuration.
	records := func(extra ...dns.RR) []dns.RR {
		var rrs []dns.RR
		for _, rr := range testRecords() {
			if rr.Header().Name != nsName {
				rrs = append(rrs, rr)
			}
		}
		return append(rrs, extra...)
	}
	s.Update(1, records())
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	dir, log := startNamed(t, namedPort, s.TCPAddr().(*net.TCPAddr).Port)

	eventually(t, "named to load the zone by AXFR", func() bool {
		r := askNamed(namedPort, "sg.localhost.", dns.TypeSOA)
		return r != nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) == 1 &&
			r.Answer[0].(*dns.SOA).Serial == s.Serial()
	})
	zoneFile := filepath.Join(dir, "sg.localhost.db")
	eventually(t, "named to write its zone file", func() bool {
		_, err := os.Stat(zoneFile)
		return err == nil
	})
	// Every check named-checkzone has made fatal: integrity (in-zone NS and
	// MX targets have addresses), NS and MX targets that are names.
	out, err := exec.Command(checkzone, "-i", "full", "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail",
		"sg.localhost", zoneFile).CombinedOutput()
	if err != nil {
		zf, _ := os.ReadFile(zoneFile)
		t.Fatalf("named-checkzone refuses the transferred zone: %v\n%s\nzone file:\n%s", err, out, zf)
	}
	if !strings.Contains(string(out), "OK") {
		t.Errorf("named-checkzone: %s", out)
	}

	const newDKIM = "sg1.newdomaina.dkim.sg.localhost."
	if r := askNamed(namedPort, newDKIM, dns.TypeTXT); r == nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("secondary answers the new name before the change: %v", r)
	}
	ixfrBefore := s.metrics.ixfr.Load()
	sentBefore := s.metrics.notifySent.Load()
	serial := s.Update(s.Serial()+1, records(TXT(newDKIM, 0, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := askNamed(namedPort, newDKIM, dns.TypeTXT)
		if r != nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			if got := strings.Join(r.Answer[0].(*dns.TXT).Txt, ""); !strings.HasPrefix(got, "v=DKIM1; k=ed25519; p=") {
				t.Fatalf("secondary serves %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secondary does not answer the new DKIM TXT 5 s after the change (serial %d): %v", serial, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.metrics.notifySent.Load() <= sentBefore {
		t.Error("the secondary followed without an acknowledged NOTIFY")
	}
	if s.metrics.ixfr.Load() <= ixfrBefore {
		t.Errorf("the secondary did not get the change by an incremental IXFR; named log:\n%s", log.String())
	}
}
