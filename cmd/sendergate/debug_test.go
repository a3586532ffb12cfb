package main

import (
	"fmt"
	"io"
	"net/http"
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
