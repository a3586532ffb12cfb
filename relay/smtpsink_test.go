package relay_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sendergate/sendergate/relay"
)

const smtpSinkPath = "/usr/sbin/smtp-sink"

// startSMTPSink runs Postfix's smtp-sink on a free loopback port with extra
// flags, dumping each transaction under the returned directory.
func startSMTPSink(t *testing.T, flags ...string) (addr, dumpDir string) {
	t.Helper()
	if _, err := os.Stat(smtpSinkPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("smtp-sink is required in CI: %v", err)
		}
		t.Skipf("smtp-sink not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()

	// Not t.TempDir: its parent is 0700, and as root smtp-sink must run
	// as nobody (it refuses root), who then writes the dumps.
	dumpDir, err = os.MkdirTemp("", "relay-smtp-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dumpDir) })
	args := append([]string{}, flags...)
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
		if err := os.Chmod(dumpDir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	args = append(args, "-d", dumpDir+"/%M.", addr, "100")
	cmd := exec.Command(smtpSinkPath, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start smtp-sink: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitListening(t, addr)
	return addr, dumpDir
}

// waitListening polls until addr accepts connections (process start-up).
func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("smtp-sink did not listen on %s", addr)
}

// waitDumps polls until n dump files with a complete body exist.
func waitDumps(t *testing.T, dir string, n int, tail []byte) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		var dumps [][]byte
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, tail) {
				dumps = append(dumps, b)
			}
		}
		if len(dumps) >= n {
			return dumps
		}
	}
	t.Fatalf("smtp-sink did not dump %d messages in %s", n, dir)
	return nil
}

func TestUpstreamAgainstSMTPSink(t *testing.T) {
	addr, dumps := startSMTPSink(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: addr, LocalName: "gate.example.com"})
	for _, id := range []string{"sink1", "sink2"} {
		if err := u.Send(context.Background(), testMessage(id, "b@example.net", "c@example.org")); err != nil {
			t.Fatalf("Send %s: %v", id, err)
		}
	}
	// smtp-sink dumps with LF line endings; dot-stuffing must be undone.
	tail := []byte("Hello.\n.\n..leading dots\n.end\nnaïve 8-bit\n")
	got := waitDumps(t, dumps, 2, tail)
	for _, d := range got {
		for _, want := range []string{"X-Helo-Args: gate.example.com", "X-Rcpt-Args: <b@example.net>", "X-Rcpt-Args: <c@example.org>", "DKIM-Signature: v=1;"} {
			if !bytes.Contains(d, []byte(want)) {
				t.Errorf("dump lacks %q:\n%s", want, d)
			}
		}
	}
}

func TestUpstreamSMTPSinkFailures(t *testing.T) {
	tests := []struct {
		name      string
		flags     []string
		wantClass int // reply code / 100
		wantCode  int // exact code when not 0
	}{
		{name: "RCPT hard reject passes through", flags: []string{"-f", "rcpt"}, wantClass: 5},
		{name: "MAIL soft reject passes through", flags: []string{"-r", "mail"}, wantClass: 4},
		{name: "421 on MAIL is unreachable", flags: []string{"-Q", "mail"}, wantCode: 451},
		{name: "no reply to the final dot is unreachable", flags: []string{"-q", "."}, wantCode: 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startSMTPSink(t, tt.flags...)
			u := newUpstream(t, relay.UpstreamConfig{Addr: addr})
			e := smtpErr(t, u.Send(context.Background(), testMessage("fail", "b@example.net")))
			if tt.wantCode != 0 && e.Code != tt.wantCode {
				t.Errorf("Send error = %d %v %q, want %d", e.Code, e.EnhancedCode, e.Message, tt.wantCode)
			}
			if tt.wantClass != 0 && (e.Code/100 != tt.wantClass || e.EnhancedCode[0] != tt.wantClass) {
				t.Errorf("Send error = %d %v %q, want class %d", e.Code, e.EnhancedCode, e.Message, tt.wantClass)
			}
		})
	}
}
