package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/bindtest"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/internal/logtest"
	"github.com/sendergate/sendergate/migrations"
)

// binary is built once per test run by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sendergate-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sendergate")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := bindtest.FreePort(t) // free for UDP and TCP: dns.listen takes both
		givenMu.Lock()
		dup := given[port]
		given[port] = true
		givenMu.Unlock()
		if !dup {
			return port
		}
	}
	t.Fatal("no unused loopback port")
	return 0
}

// given holds every port freePort handed out in this process: the kernel
// may offer a just-closed port again, and one daemon's listeners (or two
// parallel tests) must not be given the same one.
var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

// instance is a running sendergate process.
type instance struct {
	dir, admin, smtp, smtps, dns string
	bounce                       string // bounce.listen
	cmd                          *exec.Cmd
	log                          *logtest.Buffer // written by the process's output copier
	once                         sync.Once
}

// stop shuts the daemon down gracefully (SIGTERM), killing it after 20s.
func (in *instance) stop() {
	in.once.Do(func() {
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = in.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = in.cmd.Process.Kill()
			<-done
		}
	})
}

// daemonOpts adjust the generated config.
type daemonOpts struct {
	upstream  string   // relay.upstream
	resolvers []string // dns.resolvers
	extra     string   // appended TOML sections ([sandbox], [confirm], ...)
	env       []string
	strict    bool   // submission.require_confirmed_address
	grace     string // dns.grace (default "72h")
	dataDir   string // reuse a data dir (a restart); default a new one
	dnsAddr   string // dns.listen; default a free loopback port
	// customer, when set, is the customers' DNS: dns.resolvers, and it
	// delegates the provider zone to this daemon, as on the Internet.
	customer *dnstest.Server
}

// startDaemon writes a config with free loopback ports and starts
// `sendergate serve` in a temp dir, waiting for /healthz.
func startDaemon(t *testing.T, o daemonOpts) *instance {
	t.Helper()
	dir := o.dataDir
	if dir == "" {
		dir = t.TempDir()
	}
	if o.grace == "" {
		o.grace = "72h"
	}
	in := &instance{dir: dir, log: &logtest.Buffer{},
		admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), smtp: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		smtps: fmt.Sprintf("127.0.0.1:%d", freePort(t)), dns: o.dnsAddr, bounce: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	if in.dns == "" {
		in.dns = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	if o.customer != nil {
		o.resolvers = append(o.resolvers, o.customer.Addr())
		o.customer.Delegate("sg.localhost", in.dns)
	}
	cfg := fmt.Sprintf(`data_dir = %q
database = "sqlite:%s"
[submission]
listen = %q
listen_tls = %q
require_confirmed_address = %v
[admin]
listen = %q
public_url = "http://%s"
[relay]
upstream = %q
[bounce]
listen = %q
[dns]
listen = %q
verify_interval = "10s"
grace = %q
resolvers = [%s]
%s`, filepath.Join(dir, "data"), filepath.Join(dir, "data", "sg.db"), in.smtp, in.smtps, o.strict, in.admin, in.admin,
		o.upstream, in.bounce, in.dns, o.grace, quoteList(o.resolvers), o.extra)
	path := filepath.Join(dir, "sendergate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	in.launch(t, append(os.Environ(), o.env...), "serve", "-config", path)
	return in
}

// launch runs the binary with args in in.dir, its output into in.log,
// stops it when the test ends (printing the log if the test failed), and
// waits until /healthz answers 200.
func (in *instance) launch(t *testing.T, env []string, args ...string) {
	t.Helper()
	in.cmd = exec.Command(binary, args...)
	in.cmd.Dir = in.dir
	in.cmd.Env = env
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", in.log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, err := httpGet("http://" + in.admin + "/healthz"); err == nil && code == 200 {
			return
		}
		if in.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("%s not healthy after 30s; log:\n%s", strings.Join(args, " "), in.log.String())
		}
	}
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func (in *instance) adminKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.dir, "data", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// call does one API request and decodes the JSON answer into out (if not nil).
func (in *instance) call(t *testing.T, key, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+in.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func TestServeOnDefaultsCreatesOrgAndAccount(t *testing.T) {
	in := startDaemon(t, daemonOpts{})
	fi, err := os.Stat(filepath.Join(in.dir, "data", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.key mode = %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{"sg.db", "tls/cert.pem", "tls/key.pem"} {
		if _, err := os.Stat(filepath.Join(in.dir, "data", f)); err != nil {
			t.Errorf("first start did not create %s: %v", f, err)
		}
	}
	key := in.adminKey(t)
	var org map[string]any
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, &org); code != 201 {
		t.Fatalf("create org: %d %v", code, org)
	}
	if org["sandbox_domain"] != "acme.sandbox.sg.localhost" {
		t.Errorf("sandbox_domain = %v", org["sandbox_domain"])
	}
	var acct map[string]string
	if code := in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"billing-app"}`, &acct); code != 201 {
		t.Fatalf("create account: %d %v", code, acct)
	}
	if acct["username"] != "billing-app@acme" || len(acct["password"]) < 26 {
		t.Errorf("account = %v", acct)
	}
	if code := in.call(t, "wrong-key-wrong-key", "GET", "/v1/orgs", "", nil); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	for _, want := range []string{"admin key created", "database ready", "TLS certificate", "admin API listening"} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(in.log.String(), acct["password"]) || strings.Contains(in.log.String(), key) {
		t.Error("a secret appears in the log")
	}
}

func TestAdminKeyFromEnvironment(t *testing.T) {
	in := startDaemon(t, daemonOpts{env: []string{"SENDERGATE_ADMIN_KEY=env-admin-key-0123456789"}})
	if code := in.call(t, "env-admin-key-0123456789", "GET", "/v1/orgs", "", nil); code != 200 {
		t.Fatalf("env key refused: %d", code)
	}
	if _, err := os.Stat(filepath.Join(in.dir, "data", "admin.key")); err == nil {
		t.Error("admin.key written although SENDERGATE_ADMIN_KEY was set")
	}
}

func TestMigrateTwice(t *testing.T) {
	dir := t.TempDir()
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	for i, want := range []string{fmt.Sprintf("migrations_applied=%d", len(files)), "migrations_applied=0"} {
		cmd := exec.Command(binary, "migrate")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("migrate #%d: %v\n%s", i+1, err, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("migrate #%d output lacks %q:\n%s", i+1, want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "sendergate.db")); err != nil {
		t.Errorf("default database not created: %v", err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte("[submission]\nmax_recipients = 0\nlistn = \"x\"\n"), 0o600)
	cmd := exec.Command(binary, "serve", "-config", path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "submission.listn") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("want one line naming submission.listn, got:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sendergate ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
