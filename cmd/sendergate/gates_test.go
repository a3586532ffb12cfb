package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sendergate/sendergate/config"
)

// TestGatesOffByDefault: the milter and the policy service trust the
// account their peer claims, so neither listens unless configured.
func TestGatesOffByDefault(t *testing.T) {
	def := config.Default()
	if def.Milter.Listen != "" || def.Policyd.Listen != "" {
		t.Errorf("default milter.listen = %q, policyd.listen = %q; want both off", def.Milter.Listen, def.Policyd.Listen)
	}
	for key, peers := range map[string][]string{"milter.peers": def.Milter.Peers, "policyd.peers": def.Policyd.Peers} {
		if strings.Join(peers, ",") != "127.0.0.1,::1" {
			t.Errorf("default %s = %v, want loopback only", key, peers)
		}
	}

	in := startDaemon(t, daemonOpts{}) // its config has no [milter] or [policyd] section
	log := in.log.String()
	if !strings.Contains(log, "listener=submission.listen") {
		t.Fatalf("the log names no listener at all, the check below would prove nothing:\n%s", log)
	}
	for _, key := range []string{"milter.listen", "policyd.listen"} {
		if strings.Contains(log, "listener="+key) {
			t.Errorf("%s is listening on the defaults", key)
		}
	}
	body := in.metrics(t)
	for _, prefix := range []string{"sendergate_milter_", "sendergate_policyd_"} {
		if strings.Contains(body, prefix) {
			t.Errorf("metrics have %s* series: the gate runs on the defaults", prefix)
		}
	}
}

// TestMilterPeerCannotClaimAnAccount is the attack of issue 9: a process
// that can reach milter.listen claims another tenant's {auth_authen} and
// asks for a signature for that tenant's domain. From outside
// milter.peers it is dropped before the milter reads a byte; from a listed
// peer the same request is signed (the gate still works). The policy
// service on a unix socket answers through the socket.
func TestMilterPeerCannotClaimAnAccount(t *testing.T) {
	dir := t.TempDir()
	milterAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sock := filepath.Join(dir, "policyd.sock")
	in := startDaemon(t, daemonOpts{dataDir: dir, extra: fmt.Sprintf(`[milter]
listen = %q
peers = ["127.0.0.1"]
[policyd]
listen = "unix:%s"
`, milterAddr, sock)})
	key := in.adminKey(t)
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	if code := in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"billing-app"}`, nil); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	if n := metricValue(in.metrics(t), "sendergate_milter_peer_refused_total"); n != "0" {
		t.Errorf("sendergate_milter_peer_refused_total at start = %q, want 0", n)
	}
	const victim, from = "billing-app@acme", "x@acme.sandbox.sg.localhost"

	sig, err := milterSignature(milterAddr, "127.0.0.2", victim, from)
	if err == nil || sig != "" {
		t.Errorf("peer 127.0.0.2 claiming %s: signature %q, err %v; want the connection dropped and no signature", victim, sig, err)
	}
	// The daemon logs after closing the connection: allow it a moment.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(in.log.String(), "remote=127.0.0.2:"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the refusal of 127.0.0.2 is not logged")
			break
		}
	}
	if n := metricValue(in.metrics(t), "sendergate_milter_peer_refused_total"); n != "1" {
		t.Errorf("sendergate_milter_peer_refused_total = %q, want 1", n)
	}

	sig, err = milterSignature(milterAddr, "127.0.0.1", victim, from)
	if err != nil || !strings.Contains(sig, "d=acme.sandbox.sg.localhost") {
		t.Errorf("listed peer 127.0.0.1: signature %q, err %v; want a DKIM-Signature for the sandbox domain", sig, err)
	}

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("policyd socket: %v, %v; want a socket with mode 0660", fi, err)
	}
	if got := policyAction(t, sock, victim, "x@bank.example"); !strings.HasPrefix(got, "action=REJECT 5.7.1") {
		t.Errorf("policy service over the unix socket answered %q, want action=REJECT 5.7.1", got)
	}
	in.stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Error("the policy socket is still there after shutdown")
	}
}

// milterSignature connects from the local address from, runs one message
// claiming account user through the milter, and returns the value of the
// DKIM-Signature the milter inserted ("" for none).
func milterSignature(addr, from, user, headerFrom string) (string, error) {
	c := gomilter.NewClientWithOptions("tcp", addr, gomilter.ClientOptions{
		Dialer:      &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 30 * time.Second},
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	defer s.Close()
	if err := s.Macros(gomilter.CodeMail, "i", "Q1", "{auth_type}", "PLAIN", "{auth_authen}", user); err != nil {
		return "", err
	}
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Mail("sender@client.example", nil) },
		func() (*gomilter.Action, error) { return s.Rcpt("rcpt@dest.example", nil) },
		func() (*gomilter.Action, error) { return s.HeaderField("From", headerFrom) },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "invoice") },
		s.HeaderEnd,
		func() (*gomilter.Action, error) { return s.BodyChunk([]byte("pay now\r\n")) },
	}
	for _, step := range steps {
		act, err := step()
		if err != nil {
			return "", err
		}
		if act.Code != gomilter.ActContinue {
			return "", fmt.Errorf("milter answered %c %d %s", act.Code, act.SMTPCode, act.SMTPText)
		}
	}
	mods, _, err := s.End()
	if err != nil {
		return "", err
	}
	for _, m := range mods {
		if m.Code == gomilter.ActInsertHeader && m.HeaderName == "DKIM-Signature" {
			return m.HeaderValue, nil
		}
	}
	return "", nil
}

// policyAction sends one Postfix policy request over the unix socket path
// and returns the action line.
func policyAction(t *testing.T, path, user, sender string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial policy socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=%s\nsender=%s\nrecipient=rcpt@dest.example\n\n", user, sender)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("read policy answer: %v", err)
	}
	return strings.TrimSpace(line)
}

// metrics returns the admin listener's /metrics text.
func (in *instance) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricValue is the value of an unlabelled series in a /metrics text, or
// "" when it is absent.
func metricValue(body, name string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
