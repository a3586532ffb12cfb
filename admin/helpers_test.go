package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/internal/logtest"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store"
)

const (
	testAdminKey = "test-admin-key-0123456789abcdef"
	testZone     = "sg.localhost"
	testSandbox  = "sandbox.sg.localhost"
)

// env is one admin API server on a real listener, with its collaborators:
// the store, a settable clock, the customer's DNS server, the upstream MTA
// that receives confirmation emails, and the captured log.
type env struct {
	t        *testing.T
	st       *store.Store
	url      string
	clock    *clocktest.Clock
	dns      *dnstest.Server
	upstream *relaytest.Server
	logs     *logtest.Buffer
}

// envOption adjusts the admin options before the server starts.
type envOption func(*admin.Options)

func withMetrics(h http.Handler) envOption { return func(o *admin.Options) { o.Metrics = h } }

func withReady(f func(context.Context) error) envOption {
	return func(o *admin.Options) { o.Ready = f }
}

func newEnv(t *testing.T, st *store.Store, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, st: st, clock: clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		dns: dnstest.NewServer(t), upstream: relaytest.NewServer(t), logs: &logtest.Buffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := domains.NewDNSResolver([]string{e.dns.Addr()}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	up := relay.NewUpstream(relay.UpstreamConfig{Addr: e.upstream.Addr, Logger: logger})
	t.Cleanup(func() { _ = up.Close() })
	// The listener first: its URL is admin.public_url, the base of the
	// confirmation links and the origin the confirmation form must come from.
	hs := httptest.NewUnstartedServer(nil)
	e.url = "http://" + hs.Listener.Addr().String()
	o := admin.Options{
		Store: st, AdminKey: testAdminKey, PublicURL: e.url, Zone: testZone, SandboxZone: testSandbox, Logger: logger, Now: e.clock.Now,
		Domains: domains.NewService(st, domains.ServiceOptions{Zone: testZone, Resolver: res,
			Interval: time.Hour, Grace: 72 * time.Hour, Logger: logger, Now: e.clock.Now}),
		Addresses: addresses.New(st, addresses.Options{PublicURL: e.url, From: "no-reply@sg.localhost",
			TTL: 24 * time.Hour, Hostname: "sg.test", Sender: up, Logger: logger, Now: e.clock.Now}),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := admin.New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	return e
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body is sent as is when it is a string, JSON-encoded
// otherwise, and not at all when nil. key "" sends no Authorization.
func (e *env) do(method, path, key string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// must asserts the status and decodes the JSON body into v (when not nil).
func (r response) must(t *testing.T, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if v == nil {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// apiErr is the documented error shape.
type apiErr struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// wantErr asserts an error response: status, code and field, the JSON
// shape {"error": {...}} with nothing else, and a message.
func (r response) wantErr(t *testing.T, status int, code, field string) apiErr {
	t.Helper()
	var body map[string]json.RawMessage
	r.must(t, status, &body)
	if len(body) != 1 || body["error"] == nil {
		t.Fatalf("error body %s, want exactly {\"error\": {...}}", r.body)
	}
	var e apiErr
	dec := json.NewDecoder(bytes.NewReader(body["error"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error object %s: %v", body["error"], err)
	}
	if e.Code != code || e.Field != field || e.Message == "" {
		t.Fatalf("error %+v, want code %q field %q and a message", e, code, field)
	}
	return e
}

// org is an organization made through the API, with a key of its own.
type org struct {
	name  string
	key   string
	keyID string
}

func (e *env) createOrg(name string) org {
	e.t.Helper()
	e.do("POST", "/v1/orgs", testAdminKey, map[string]string{"name": name}).must(e.t, http.StatusCreated, nil)
	var k struct{ ID, Key string }
	e.do("POST", "/v1/orgs/"+name+"/keys", testAdminKey, nil).must(e.t, http.StatusCreated, &k)
	return org{name: name, key: k.Key, keyID: k.ID}
}

type credentials struct {
	Name     string `json:"name"`
	Username string `json:"username"`
	Password string `json:"password"`
}

func (e *env) createAccount(o org, name string) credentials {
	e.t.Helper()
	var c credentials
	e.do("POST", "/v1/orgs/"+o.name+"/smtp-accounts", o.key, map[string]string{"name": name}).must(e.t, http.StatusCreated, &c)
	return c
}

// listJSON returns the body of an admin-key GET, for before/after checks.
func (e *env) listJSON(path string) string {
	e.t.Helper()
	r := e.do("GET", path, testAdminKey, nil)
	r.must(e.t, http.StatusOK, nil)
	return string(r.body)
}

type recordJSON struct {
	Purpose, Host, Type, Value, Status, Found, Reason string
}

type domainJSON struct {
	Name             string       `json:"name"`
	Sandbox          bool         `json:"sandbox"`
	Status           string       `json:"status"`
	ReturnPathDomain string       `json:"return_path_domain"`
	TrackingDomain   string       `json:"tracking_domain"`
	DKIMSelector     string       `json:"dkim_selector"`
	Access           accessJSON   `json:"access"`
	Records          []recordJSON `json:"records"`
	VerifiedAt       *time.Time   `json:"verified_at"`
}

type accessJSON struct {
	Restricted bool     `json:"restricted"`
	Accounts   []string `json:"accounts"`
}

// verifiedDomain adds name to o, publishes its records and verifies it.
func (e *env) verifiedDomain(o org, in map[string]any) domainJSON {
	e.t.Helper()
	var d domainJSON
	e.do("POST", "/v1/orgs/"+o.name+"/domains", o.key, in).must(e.t, http.StatusCreated, &d)
	e.publish(d.Records)
	e.do("POST", "/v1/orgs/"+o.name+"/domains/"+d.Name+"/verify", o.key, nil).must(e.t, http.StatusOK, &d)
	if d.Status != "verified" {
		e.t.Fatalf("domain %s is %s after publishing its records: %+v", d.Name, d.Status, d.Records)
	}
	return d
}

// publish serves each record's host as a CNAME to its value at the
// customer's DNS.
func (e *env) publish(recs []recordJSON) {
	for _, r := range recs {
		e.dns.PublishCNAME(r.Host, r.Value)
	}
}

var tokenRE = regexp.MustCompile(`/confirm\?token=([A-Za-z0-9_-]+)`)

// lastToken returns the token of the last confirmation email to rcpt.
func (e *env) lastToken(rcpt string) string {
	e.t.Helper()
	msgs := e.upstream.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if len(msgs[i].To) == 1 && msgs[i].To[0] == rcpt {
			if m := tokenRE.FindSubmatch(msgs[i].Data); m != nil {
				return string(m[1])
			}
		}
	}
	e.t.Fatalf("no confirmation email with a token to %s among %d messages", rcpt, len(msgs))
	return ""
}
