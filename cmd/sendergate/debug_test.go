package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
)

func TestVersionNamesRSASigner(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{name: "forced go", env: []string{dkim.EnvRSASigner + "=go"}, want: "DKIM RSA signer: go (crypto/rsa: SENDERGATE_RSA_SIGNER=go)"},
		{name: "library missing", env: []string{dkim.EnvLibcrypto + "=/nonexistent/libcrypto.so.3"},
			want: "DKIM RSA signer: go (crypto/rsa: load /nonexistent/libcrypto.so.3: "},
	}
	if dkim.RSASigner().Name == dkim.ImplOpenSSL { // this machine has libcrypto.so.3
		tests = append(tests, struct {
			name string
			env  []string
			want string
		}{name: "default", want: "DKIM RSA signer: openssl (OpenSSL 3."})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, "version")
			cmd.Env = append(os.Environ(), dkim.EnvRSASigner+"=", dkim.EnvLibcrypto+"=")
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("version: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "sendergate ") || !strings.HasPrefix(lines[1], tt.want) {
				t.Fatalf("version printed %q, want a second line starting %q", out, tt.want)
			}
		})
	}
}

// TestDebugListener: with debug.listen the daemon serves pprof on that
// loopback address; without it there is no such listener; the start-up
// log names the RSA signer either way.
func TestDebugListener(t *testing.T) {
	debugAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startDaemon(t, daemonOpts{extra: fmt.Sprintf("[debug]\nlisten = %q\n", debugAddr)})
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "smtpd",
		"/debug/pprof/cmdline":           "serve",
	} {
		resp, err := http.Get("http://" + debugAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q: %.200q", path, resp.StatusCode, want, body)
		}
	}
	logText := in.log.String()
	if !strings.Contains(logText, "listener=debug.listen addr="+debugAddr) {
		t.Errorf("no log line for the debug listener:\n%s", logText)
	}
	if want := "msg=\"DKIM RSA signer\" signer=" + dkim.RSASigner().Name; !strings.Contains(logText, want) {
		t.Errorf("log lacks %q:\n%s", want, logText)
	}

	// Off by default, and the forced pure-Go signer is what the log names.
	plain := startDaemon(t, daemonOpts{env: []string{dkim.EnvRSASigner + "=go"}})
	logText = plain.log.String()
	if strings.Contains(logText, "debug.listen") {
		t.Errorf("a debug listener without debug.listen:\n%s", logText)
	}
	if want := `msg="DKIM RSA signer" signer=go detail="crypto/rsa: SENDERGATE_RSA_SIGNER=go"`; !strings.Contains(logText, want) {
		t.Errorf("log lacks %q:\n%s", want, logText)
	}
}

// TestDebugListenNotLoopback: serve refuses to start a profiling listener
// reachable from the network, with one line naming the key.
func TestDebugListenNotLoopback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sendergate.toml")
	if err := os.WriteFile(path, []byte("data_dir = \""+dir+"\"\n[debug]\nlisten = \"0.0.0.0:6060\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "-config", path)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started with debug.listen on 0.0.0.0:\n%s", out)
	}
	if text := strings.TrimSpace(string(out)); !strings.Contains(text, "debug.listen") ||
		!strings.Contains(text, "not a loopback address") || strings.Contains(text, "\n") {
		t.Fatalf("want one line naming debug.listen, got:\n%s", out)
	}
}

// TestDebugListenerUnixSocket: debug.listen on a unix socket serves pprof
// there, with mode 0600, so another user of the host cannot reach it (a
// loopback TCP port admits every local process).
func TestDebugListenerUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	startDaemon(t, daemonOpts{extra: fmt.Sprintf("[debug]\nlisten = %q\n", "unix:"+sock)})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("debug socket mode %v, want a socket with 0600", fi.Mode())
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://debug/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "smtpd") {
		t.Fatalf("GET over the socket: %d %.200q", resp.StatusCode, body)
	}
}

// TestDebugProfileDurationBounded: a CPU profile or trace longer than the
// listener allows is refused at once with the limit in the text; without
// the bound a local process could keep the profiler (or the tracer, whose
// buffers grow while its reader stalls) running for a day.
func TestDebugProfileDurationBounded(t *testing.T) {
	h := debugHandler()
	for _, target := range []string{"/debug/pprof/profile?seconds=86400", "/debug/pprof/trace?seconds=3600"} {
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("GET %s was accepted: still profiling after 10 s", target)
		}
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "at most") {
			t.Errorf("GET %s: %d %q, want 400 naming the limit", target, rec.Code, rec.Body.String())
		}
	}
	// Within the limit it profiles.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/profile?seconds=1", nil))
	if rec.Code != 200 || rec.Body.Len() == 0 {
		t.Fatalf("a 1 s profile: %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

// TestDebugListenerConnectionCap: one local process opening many
// connections gets maxDebugConns served at a time; the rest wait in the
// backlog until one closes, so they cost the daemon no goroutine or buffer.
func TestDebugListenerConnectionCap(t *testing.T) {
	l, err := listenDebug("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4*maxDebugConns)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 2 * maxDebugConns {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var held []net.Conn
	for range maxDebugConns {
		select {
		case c := <-accepted:
			held = append(held, c)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d connections accepted, want %d", len(held), maxDebugConns)
		}
	}
	select {
	case <-accepted:
		t.Fatalf("a connection past the cap of %d was accepted", maxDebugConns)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no waiting connection accepted after one closed")
	}
	for _, c := range held[1:] {
		c.Close()
	}
}
