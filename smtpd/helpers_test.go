package smtpd_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/internal/logtest"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/smtpd"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// Test accounts of the organization "acme".
const (
	appUser   = "app@acme"
	appPass   = "app-password-0123456789abcdef"
	otherUser = "other@acme"
	otherPass = "other-password-0123456789abcdef"
)

// rsaKey is one RSA-2048 key shared by every test domain: generating one
// per domain would make the tests slow without testing anything more.
var rsaKey = sync.OnceValues(func() (crypto.Signer, error) { return dkim.GenerateKey(dkim.RSA2048) })

// fixture is a submission server on 127.0.0.1:0 with a SQLite store, a
// policy engine and a recording upstream.
type fixture struct {
	store     *store.Store
	engine    *policy.Engine
	upstream  *relaytest.Server
	srv       *smtpd.Server
	addr      string      // STARTTLS listener
	tlsAddr   string      // implicit TLS listener
	client    *tls.Config // trusts the server's certificate
	serverTLS *tls.Config
	key       crypto.Signer
	acme      store.Org
	app       store.Account
	other     store.Account
	domains   map[string]store.Domain // acme's, by name
	logs      *logtest.Buffer
}

type option func(*fixtureOptions)

type fixtureOptions struct {
	cfg      smtpd.Config
	noReload bool
	gate     func(f *fixture, o *gate.Options) // adjusts the message stage
}

// withConfig changes the server configuration.
func withConfig(f func(*smtpd.Config)) option { return func(o *fixtureOptions) { f(&o.cfg) } }

// withoutSnapshot never loads the policy snapshot.
func withoutSnapshot() option { return func(o *fixtureOptions) { o.noReload = true } }

// testServer starts a fixture: organization acme with accounts app and
// other and these domains, and organization rival owning bank.example.
//
//	news.example.com      verified, return path mailing.news.example.com
//	pending.example       pending
//	failing.example       failing
//	revoked.example       revoked
//	restricted.example    verified, granted to "other" only
//	xn--bcher-kva.example verified (bücher.example)
func testServer(t testing.TB, opts ...option) *fixture {
	t.Helper()
	o := fixtureOptions{cfg: smtpd.Config{Hostname: "submit.test", MaxMessageBytes: 256 << 10, MaxRecipients: 3}}
	for _, opt := range opts {
		opt(&o)
	}
	key, err := rsaKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: storetest.SQLite(t), key: key, domains: map[string]store.Domain{}, logs: &logtest.Buffer{}}
	f.populate(t)
	f.engine = loader.NewEngine(f.store, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{})
	if !o.noReload {
		f.reload(t)
	}
	f.upstream = relaytest.NewServer(t)
	up := relay.NewUpstream(relay.UpstreamConfig{Addr: f.upstream.Addr, DialTimeout: 5 * time.Second})
	t.Cleanup(func() { up.Close() })

	cert, roots := selfSigned(t)
	f.client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	cfg := o.cfg
	f.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cfg.TLSConfig = f.serverTLS
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	}
	gopts := gate.Options{Hostname: cfg.Hostname, SandboxLimit: 100, Now: cfg.Now}
	if o.gate != nil {
		o.gate(f, &gopts)
	}
	cfg.Gate = gate.New(f.engine, f.store, gopts)
	f.srv, err = smtpd.New(cfg, f.engine, up)
	if err != nil {
		t.Fatalf("smtpd.New: %v", err)
	}
	f.addr = f.serve(t, f.srv.Serve)
	f.tlsAddr = f.serve(t, f.srv.ServeTLS)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return f
}

// serve runs serve on a new loopback listener and returns its address.
func (f *fixture) serve(t testing.TB, serve func(net.Listener) error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := serve(l); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	return l.Addr().String()
}

func (f *fixture) reload(t testing.TB) {
	t.Helper()
	if err := f.engine.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
}

// populate creates the organizations, accounts and domains.
func (f *fixture) populate(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	f.acme = f.org(t, "acme")
	rival := f.org(t, "rival")
	f.app = f.account(t, f.acme, "app", appUser, appPass)
	f.other = f.account(t, f.acme, "other", otherUser, otherPass)
	for _, d := range []struct{ name, status, returnPath string }{
		{"news.example.com", "verified", "mailing"},
		{"pending.example", "pending", ""},
		{"failing.example", "failing", ""},
		{"revoked.example", "revoked", ""},
		{"restricted.example", "verified", ""},
		{"xn--bcher-kva.example", "verified", ""},
	} {
		f.domains[d.name] = f.domain(t, f.acme, d.name, d.status, d.returnPath)
	}
	f.domain(t, rival, "bank.example", "verified", "")
	ev := store.Event{OrgID: f.acme.ID, Subject: "domain:restricted.example", Kind: "domain.access", At: store.At(time.Now())}
	if err := f.store.SetAccess(ctx, f.domains["restricted.example"].ID, true, []string{f.other.ID}, ev); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) pem(t testing.TB) string {
	t.Helper()
	p, err := dkim.MarshalPrivateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) org(t testing.TB, name string) store.Org {
	t.Helper()
	now := store.At(time.Now())
	o := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: o.SandboxDomain, Sandbox: true, Token: "t" + store.NewID(),
		Status: "verified", DKIMSelector: "sg1", DKIMAlgorithm: string(dkim.RSA2048), DKIMKey: f.pem(t),
		Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := f.store.CreateOrg(context.Background(), o, sb); err != nil {
		t.Fatalf("CreateOrg(%s): %v", name, err)
	}
	return o
}

func (f *fixture) account(t testing.TB, o store.Org, name, username, password string) store.Account {
	t.Helper()
	now := store.At(time.Now())
	a := store.Account{ID: store.NewID(), OrgID: o.ID, Name: name, Username: username,
		PasswordHash: policy.HashPassword(password), CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateAccount(context.Background(), a); err != nil {
		t.Fatalf("CreateAccount(%s): %v", username, err)
	}
	return a
}

func (f *fixture) domain(t testing.TB, o store.Org, name, status, returnPath string) store.Domain {
	t.Helper()
	now := store.At(time.Now())
	d := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: name, Token: "t" + store.NewID(), Status: status,
		ReturnPath: returnPath, DKIMSelector: "sg1", DKIMAlgorithm: string(dkim.RSA2048), DKIMKey: f.pem(t),
		Records: "[]", CreatedAt: now}
	if status != "pending" {
		d.VerifiedAt = now
	}
	ev := store.Event{OrgID: o.ID, Subject: "domain:" + name, Kind: "domain.added", At: now}
	if err := f.store.CreateDomain(context.Background(), d, ev); err != nil {
		t.Fatalf("CreateDomain(%s): %v", name, err)
	}
	return d
}

// dial connects in plaintext to the STARTTLS listener and says EHLO.
func (f *fixture) dial(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(f.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// testServerAuthenticated starts a fixture and returns a client
// authenticated as app with PLAIN over loopback plaintext.
func testServerAuthenticated(t testing.TB, opts ...option) (*fixture, *smtp.Client) {
	t.Helper()
	f := testServer(t, opts...)
	return f, f.authenticated(t)
}

func (f *fixture) authenticated(t testing.TB) *smtp.Client {
	t.Helper()
	c := f.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	return c
}

// send runs one transaction and returns the reply to the final dot as an
// *smtp.SMTPError (code 250 included), or the error of an earlier step.
func send(c *smtp.Client, message string, rcpts ...string) (*smtp.SMTPError, error) {
	if len(rcpts) == 0 {
		rcpts = []string{"rcpt@example.net"}
	}
	if err := c.Mail("app@client.test", nil); err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return nil, err
		}
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write([]byte(message)); err != nil {
		return nil, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se, nil
		}
		return nil, err
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: resp.StatusText}, nil
}

// mustSend is send that fails the test on a transport error.
func mustSend(t testing.TB, c *smtp.Client, message string, rcpts ...string) *smtp.SMTPError {
	t.Helper()
	reply, err := send(c, message, rcpts...)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return reply
}

// message builds a small message with the given header lines.
func message(headers ...string) string {
	return strings.Join(headers, "\r\n") + "\r\nTo: rcpt@example.net\r\nSubject: test\r\n\r\nHello.\r\n"
}

// wantReply checks code and enhanced code of reply.
func wantReply(t testing.TB, reply *smtp.SMTPError, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	if reply == nil {
		t.Fatalf("no reply, want %d %v", code, enhanced)
	}
	if reply.Code != code || reply.EnhancedCode != enhanced {
		t.Fatalf("reply = %d %v %q, want %d %v", reply.Code, reply.EnhancedCode, reply.Message, code, enhanced)
	}
}

// asSMTPError returns err's *smtp.SMTPError or fails the test.
func asSMTPError(t testing.TB, err error) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not an SMTP reply", err, err)
	}
	return se
}

// selfSigned makes an ECDSA certificate for 127.0.0.1.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "submit.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
