package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// dkimDomain is the part of the Domain output these tests read.
type dkimDomain struct {
	Status       string
	DKIMSelector string `json:"dkim_selector"`
	Records      []struct{ Purpose, Host, Value, Status string }
	DKIM         struct {
		Active  *struct{ Selector string }
		Next    *struct{ Selector string }
		Retired []struct {
			Selector       string
			SafeToRemoveAt *time.Time `json:"safe_to_remove_at"`
		}
		Rotation struct{ Status string }
	}
}

// rotationRig is one daemon with an organization, an SMTP account and a
// verified domain whose records are published at the customer's DNS.
type rotationRig struct {
	in         *instance
	up         *relaytest.Server
	cust       *dnstest.Server
	key        string
	user, pass string
	lookup     func(string) ([]string, error)
}

func newRotationRig(t *testing.T, dkimTOML, domain string) *rotationRig {
	t.Helper()
	r := &rotationRig{up: relaytest.NewServer(t), cust: dnstest.NewServer(t)}
	r.in = startDaemon(t, daemonOpts{upstream: r.up.Addr, customer: r.cust, extra: "[dkim]\n" + dkimTOML + "\n"})
	r.key = r.in.adminKey(t)
	r.lookup = lookupTXT(r.in, r.cust)
	if code := r.in.call(t, r.key, "POST", "/v1/orgs", `{"name":"rot"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var acct map[string]string
	r.in.call(t, r.key, "POST", "/v1/orgs/rot/smtp-accounts", `{"name":"app"}`, &acct)
	r.user, r.pass = acct["username"], acct["password"]
	recs := addVerifiedDomain(t, r.in, r.key, r.cust, "rot", domain)
	var dkimRecs int
	for _, rec := range recs {
		if strings.Contains(rec.Host, "._domainkey.") {
			dkimRecs++
		}
	}
	if dkimRecs != 2 {
		t.Fatalf("a new domain has %d DKIM records, want two delegated selectors: %+v", dkimRecs, recs)
	}
	return r
}

// send submits one message from a@domain and returns it as the upstream
// received it, signed.
func (r *rotationRig) send(t *testing.T, domain, body string) []byte {
	t.Helper()
	r.up.ClearMessages()
	if err := submit(t, r.in.smtp, r.user, r.pass, "a@"+domain, "x@example.org", body); err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	msgs := r.up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("upstream got %d messages", len(msgs))
	}
	return msgs[0].Data
}

var selectorRE = regexp.MustCompile(`[; ]s=([a-z0-9]+)`)

// signedWith verifies msg against the zone over DNS (go-msgauth and
// python3-dkim) and checks the selector of its signature.
func (r *rotationRig) signedWith(t *testing.T, msg []byte, domain, sel string) {
	t.Helper()
	if m := selectorRE.FindSubmatch(msg); m == nil || string(m[1]) != sel {
		t.Fatalf("message signed with selector %q, want %s", m, sel)
	}
	verifyDKIM(t, msg, r.lookup, domain)
}

func (r *rotationRig) domain(t *testing.T, name string) dkimDomain {
	t.Helper()
	var d dkimDomain
	if code := r.in.call(t, r.key, "GET", "/v1/orgs/rot/domains/"+name, "", &d); code != 200 {
		t.Fatalf("get %s: %d", name, code)
	}
	return d
}

// waitDomain polls the domain until ok says so.
func (r *rotationRig) waitDomain(t *testing.T, name string, within time.Duration, what string, ok func(dkimDomain) bool) dkimDomain {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d := r.domain(t, name)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %+v", what, within, d.DKIM)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestRotationThroughBinary: rotations through the API with no DNS change
// at the customer after the first publication; every message verifies
// against the zone over DNS, one signed before a switch also after it; a
// rotation whose second CNAME is missing answers 422 and signing stays.
func TestRotationThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for dkim.retire_after (1m) between the two rotations")
	}
	t.Parallel()
	const name = "rot.example"
	r := newRotationRig(t, `retire_after = "1m"`, name)
	d := r.domain(t, name)
	if d.DKIM.Active == nil || d.DKIM.Active.Selector != "sg1" || d.DKIM.Next == nil || d.DKIM.Next.Selector != "sg1b" || d.DKIM.Rotation.Status != "ready" {
		t.Fatalf("new domain's keys: %+v", d.DKIM)
	}
	before := r.send(t, name, "before the switch")
	r.signedWith(t, before, name, "sg1")

	// The second CNAME missing: 422 naming it, signing stays on sg1.
	second := "sg1b._domainkey." + name
	var target string
	for _, rec := range d.Records {
		if rec.Host == second {
			target = rec.Value
		}
	}
	r.cust.Remove(second)
	var refused struct {
		Error   struct{ Code, Message string }
		Records []struct{ Host, Status, Reason string }
	}
	if code := r.in.call(t, r.key, "POST", "/v1/orgs/rot/domains/"+name+"/dkim/rotate", "", &refused); code != 422 ||
		refused.Error.Code != "dkim_check_failed" || len(refused.Records) != 1 || refused.Records[0].Host != second || refused.Records[0].Status != "missing" {
		t.Fatalf("rotation without the second CNAME: %d %+v", code, refused)
	}
	r.signedWith(t, r.send(t, name, "after the refused rotation"), name, "sg1")

	// Published again (as it was from the start): the switch.
	r.cust.PublishCNAME(second, target)
	if code := r.in.call(t, r.key, "POST", "/v1/orgs/rot/domains/"+name+"/dkim/rotate", "{}", &d); code != 200 ||
		d.DKIMSelector != "sg1b" || d.DKIM.Active.Selector != "sg1b" || len(d.DKIM.Retired) != 1 || d.DKIM.Retired[0].SafeToRemoveAt == nil {
		t.Fatalf("rotation: %d %+v", code, d)
	}
	after := r.send(t, name, "after the first switch")
	r.signedWith(t, after, name, "sg1b")
	r.signedWith(t, before, name, "sg1") // the retired key is still served

	// A second rotation waits for the retired key's removal, which
	// publishes a fresh next key at sg1.
	var waiting struct{ Error struct{ Code string } }
	if code := r.in.call(t, r.key, "POST", "/v1/orgs/rot/domains/"+name+"/dkim/rotate", "", &waiting); code != 422 || waiting.Error.Code != "rotation_pending" {
		t.Errorf("rotation while the retired key is served: %d %+v, want 422 rotation_pending", code, waiting)
	}
	r.waitDomain(t, name, 100*time.Second, "fresh next key at sg1", func(d dkimDomain) bool {
		return d.DKIM.Next != nil && d.DKIM.Next.Selector == "sg1" && len(d.DKIM.Retired) == 0
	})
	if code := r.in.call(t, r.key, "POST", "/v1/orgs/rot/domains/"+name+"/dkim/rotate", "", &d); code != 200 || d.DKIMSelector != "sg1" {
		t.Fatalf("second rotation: %d %+v", code, d.DKIM)
	}
	r.signedWith(t, r.send(t, name, "after the second switch"), name, "sg1")
	r.signedWith(t, after, name, "sg1b") // retired now, still served

	var evs struct{ Events []struct{ Kind string } }
	r.in.call(t, r.key, "GET", "/v1/orgs/rot/domains/"+name+"/events", "", &evs)
	var kinds []string
	for _, e := range evs.Events {
		if strings.HasPrefix(e.Kind, "dkim.") {
			kinds = append(kinds, e.Kind)
		}
	}
	if got := strings.Join(kinds, ","); got != "dkim.next_published,dkim.rotated,dkim.retired,dkim.removed,dkim.next_published,dkim.rotated,dkim.retired" {
		t.Errorf("dkim events = %s", got)
	}
	m := r.in.metrics(t)
	for _, want := range []string{`sendergate_dkim_keys{state="active"} 2`, `sendergate_dkim_keys{state="retired"} 1`, "sendergate_dkim_oldest_active_key_age_seconds"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAutomaticRotationThroughBinary: with dkim.rotate_interval = 1m the
// daemon rotates on its own; mail signed before and after verifies.
func TestAutomaticRotationThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for dkim.rotate_interval (1m)")
	}
	t.Parallel()
	const name = "auto.example"
	r := newRotationRig(t, "rotate_interval = \"1m\"\nretire_after = \"2m\"", name)
	before := r.send(t, name, "before the automatic rotation")
	r.signedWith(t, before, name, "sg1")
	d := r.waitDomain(t, name, 100*time.Second, "automatic rotation", func(d dkimDomain) bool {
		return d.DKIM.Active != nil && d.DKIM.Active.Selector == "sg1b"
	})
	if len(d.DKIM.Retired) != 1 || d.DKIM.Retired[0].Selector != "sg1" {
		t.Errorf("after the automatic rotation: %+v", d.DKIM)
	}
	r.signedWith(t, r.send(t, name, "after the automatic rotation"), name, "sg1b")
	r.signedWith(t, before, name, "sg1")
}
