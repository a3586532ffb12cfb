package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

// TestDocShowsSnippets: docs/webhooks.md shows the verification snippets
// that the tests below run, character for character.
func TestDocShowsSnippets(t *testing.T) {
	doc, err := os.ReadFile("../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"testdata/verify.py", "testdata/verify.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, b) {
			t.Errorf("docs/webhooks.md does not show %s as it is", f)
		}
	}
}

// snippetCase is one signature check the snippets must get right.
type snippetCase struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	Header string `json:"header"`
	Body   []byte `json:"body"` // base64 in JSON
	Want   bool   `json:"want"`
}

// snippetCases signs a delivery body with Sign and tampers with it.
func snippetCases() []snippetCase {
	const secret = "whsec_0123456789abcdef"
	body := []byte(`{"id":"18edc6c1ab2860c40cd6a377","type":"domain.verified","created_at":"2026-12-03T15:06:01Z","org":"acme",` +
		`"data":{"detail":"pending -> verified: all records ok","domain":"example.com"}}`)
	now := time.Now()
	sig := webhooks.Sign(secret, now, body)
	v1 := sig[strings.Index(sig, "v1="):]
	tampered := bytes.Replace(body, []byte("example.com"), []byte("example.org"), 1)
	return []snippetCase{
		{Name: "signed by Sign", Secret: secret, Header: sig, Body: body, Want: true},
		{Name: "tampered body", Secret: secret, Header: sig, Body: tampered},
		{Name: "one byte added", Secret: secret, Header: sig, Body: append(append([]byte(nil), body...), '\n')},
		{Name: "wrong secret", Secret: "whsec_other", Header: sig, Body: body},
		{Name: "secret without its whsec_ prefix", Secret: strings.TrimPrefix(secret, "whsec_"), Header: sig, Body: body},
		{Name: "stale", Secret: secret, Header: webhooks.Sign(secret, now.Add(-10*time.Minute), body), Body: body},
		{Name: "timestamp replaced", Secret: secret, Header: "t=" + strconv.FormatInt(now.Unix()+1, 10) + "," + v1, Body: body},
		{Name: "a second, valid v1", Secret: secret, Header: sig[:strings.Index(sig, ",")] + ",v1=00ff," + v1, Body: body, Want: true},
		{Name: "spaces after commas", Secret: secret, Header: strings.ReplaceAll(sig, ",", ", "), Body: body, Want: true},
		{Name: "no timestamp", Secret: secret, Header: v1, Body: body},
		{Name: "empty header", Secret: secret, Body: body},
	}
}

// checkSnippet runs a snippet's harness on the cases and compares its
// answers (a JSON list of booleans on stdout), and webhooks.Verify's.
func checkSnippet(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cases := snippetCases()
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("harness answered %q (%v), want %d booleans", out, err, len(cases))
	}
	for i, c := range cases {
		if got[i] != c.Want {
			t.Errorf("%s: snippet says %v, want %v", c.Name, got[i], c.Want)
		}
		if ok := webhooks.Verify(c.Secret, c.Header, c.Body, time.Now(), 5*time.Minute) == nil; ok != c.Want {
			t.Errorf("%s: Verify says %v, want %v", c.Name, ok, c.Want)
		}
	}
}

// TestPythonSnippet runs testdata/verify.py (the doc's Python) with
// python3 on bodies signed by Sign and tampered with.
func TestPythonSnippet(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	harness := `import base64, json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify
cases = json.load(sys.stdin)
print(json.dumps([verify(c["secret"], c["header"], base64.b64decode(c["body"] or "")) for c in cases]))
`
	cmd := exec.Command(py, "-B", "-c", harness, dir)
	checkSnippet(t, cmd)
}

// TestGoSnippet builds testdata/verify.go (the doc's Go, standard library
// only) into a program of its own and runs it on the same cases, through
// verifySignature and through the handler.
func TestGoSnippet(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	src, err := os.ReadFile("testdata/verify.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	harness := `package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"time"
)

func main() {
	var cases []struct {
		Secret, Header string
		Body           []byte
	}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	var out []bool
	for _, c := range cases {
		ok := verifySignature(c.Secret, c.Header, c.Body, time.Now(), 5*time.Minute)
		os.Setenv("SENDERGATE_WEBHOOK_SECRET", c.Secret)
		req := httptest.NewRequest("POST", "/sendergate", bytes.NewReader(c.Body))
		req.Header.Set("Sendergate-Signature", c.Header)
		rec := httptest.NewRecorder()
		handleSendergate(rec, req)
		if (rec.Code == 204) != ok {
			panic("handleSendergate answered " + rec.Result().Status + " against verifySignature")
		}
		out = append(out, ok)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}
`
	for name, b := range map[string][]byte{"verify.go": src, "main.go": []byte(harness), "go.mod": []byte("module verifysnippet\n\ngo 1.22\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(gobin, "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	checkSnippet(t, cmd)
}

// docLines returns the lines of docs/webhooks.md.
func docLines(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(doc), "\n")
}

// TestDocExampleRequestVerifies: the example request in the doc carries a
// signature that verifies with the doc's secret at its timestamp, and
// headers that agree with its body.
func TestDocExampleRequestVerifies(t *testing.T) {
	const secret = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	headers := map[string]string{}
	var body string
	lines := docLines(t)
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.HasPrefix(k, "Sendergate-") {
			headers[k] = v
		}
		if strings.HasPrefix(l, `{"id":`) && body == "" {
			body = l
		}
	}
	sig := headers["Sendergate-Signature"]
	ts, err := strconv.ParseInt(strings.TrimPrefix(sig[:strings.Index(sig, ",")], "t="), 10, 64)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	if err := webhooks.Verify(secret, sig, []byte(body), time.Unix(ts, 0), time.Minute); err != nil {
		t.Errorf("the doc's example request does not verify: %v", err)
	}
	var p struct{ ID, Type string }
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.ID != headers["Sendergate-Delivery"] || p.Type != headers["Sendergate-Event"] {
		t.Errorf("example body %s (%v) disagrees with headers %v", body, err, headers)
	}
	if !strings.Contains(strings.Join(lines, "\n"), secret) {
		t.Errorf("the doc does not name the example's secret")
	}
}

// TestDocPayloads: the doc's example data of every event type is what the
// store's event writers enqueue, byte for byte, and every type in
// store.WebhookEvents has one.
func TestDocPayloads(t *testing.T) {
	want := map[string]string{}
	for _, l := range docLines(t) {
		if f := strings.Fields(l); len(f) >= 2 && store.IsWebhookEvent(f[0]) && strings.HasPrefix(f[1], "{") {
			want[f[0]] = strings.TrimSpace(strings.TrimPrefix(l, f[0]))
		}
	}
	for _, k := range store.WebhookEvents {
		if want[k] == "" {
			t.Errorf("docs/webhooks.md has no example data for %s", k)
		}
	}
	s := storetest.SQLite(t)
	ctx := context.Background()
	all, _ := json.Marshal(store.WebhookEvents)
	got := map[string]string{}
	for _, emit := range []func(org store.Org){
		func(org store.Org) {
			now := store.At(time.Now())
			for _, ev := range []store.Event{
				{Subject: "domain:example.com", Kind: "domain.verified", Detail: "pending -> verified: all records ok"},
				{Subject: "domain:example.com", Kind: "domain.failing", Detail: "verified -> failing: dkim sg1._domainkey.example.com missing"},
				{Subject: "domain:example.com", Kind: "domain.revoked", Detail: "failing -> revoked: dkim sg1._domainkey.example.com missing"},
				{Subject: "domain:example.com", Kind: "domain.deleted"},
				{Subject: "address:contact@example.com", Kind: "address.confirmed"},
			} {
				ev.OrgID, ev.At = org.ID, now
				if err := s.AddEvent(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		},
		func(org store.Org) {
			f := store.Feedback{OrgID: org.ID, Email: "jo@example.net", Domain: "example.com", MessageID: "18edc6b9f2a4e01b5c7d9a31",
				Status: "5.1.1", Diagnostic: "550 5.1.1 user unknown"}
			if _, err := s.RecordFeedback(ctx, f, "hard", store.SuppressionRules{}); err != nil {
				t.Fatal(err)
			}
		},
		func(org store.Org) {
			f := store.Feedback{OrgID: org.ID, Email: "jo@example.net", Domain: "example.com", MessageID: "18edc6b9f2a4e01b5c7d9a31"}
			if _, err := s.RecordFeedback(ctx, f, "complaint", store.SuppressionRules{}); err != nil {
				t.Fatal(err)
			}
		},
	} {
		org := newOrg(t, s)
		wh := store.Webhook{ID: store.NewID(), OrgID: org.ID, URL: "https://hooks.example.com/", Events: string(all), Secret: "s", CreatedAt: store.At(time.Now())}
		if err := s.CreateWebhook(ctx, wh); err != nil {
			t.Fatal(err)
		}
		emit(org)
		ds, err := s.Deliveries(ctx, wh.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			var p struct {
				ID, Type, Org string
				CreatedAt     string `json:"created_at"`
				Data          json.RawMessage
			}
			if err := json.Unmarshal([]byte(d.Payload), &p); err != nil {
				t.Fatal(err)
			}
			if at, err := time.Parse(time.RFC3339, p.CreatedAt); p.ID != d.ID || p.Type != d.Event || p.Org != org.Name ||
				err != nil || !strings.HasSuffix(p.CreatedAt, "Z") || !at.Equal(d.CreatedAt.Truncate(time.Second)) {
				t.Errorf("payload %s: id, type, org or created_at wrong", d.Payload)
			}
			if _, seen := got[d.Event]; !seen {
				got[d.Event] = string(p.Data)
			}
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s data:\n doc  %s\n sent %s", k, w, got[k])
		}
	}
}
