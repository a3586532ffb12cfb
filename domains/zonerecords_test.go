package domains

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/zone"
)

const (
	zrBounceMX = "mx." + testZone
	zrSPF      = "v=spf1 ip4:192.0.2.25 -all"
	zrTrack    = "192.0.2.10"
)

// zoneEnv is a real provider zone server loaded with ZoneRecords built from
// the domains of a real store.
type zoneEnv struct {
	st      *store.Store
	svc     *Service
	org     store.Org
	srv     *zone.Server
	sysKey  crypto.Signer
	news    store.Domain // quarantine, pct 50, rua, RSA, return path and tracking
	relaxed store.Domain // DMARC none, Ed25519
	sandbox store.Domain
}

func newZoneEnv(t *testing.T, st *store.Store) *zoneEnv {
	t.Helper()
	ctx := context.Background()
	e := &zoneEnv{st: st, svc: NewService(st, ServiceOptions{Zone: testZone, Now: func() time.Time { return svcT0 }})}
	e.org = newTestOrg(t, st, "acme")
	var err error
	if e.news, err = e.svc.Create(ctx, e.org, fullInput("news.example.com")); err != nil {
		t.Fatal(err)
	}
	in := Input{Name: "relaxed.example.org", DKIMAlgorithm: AlgorithmEd25519, DMARC: &DMARC{Policy: "none", RUA: "agg@example.org"}}
	if e.relaxed, err = e.svc.Create(ctx, e.org, in); err != nil {
		t.Fatal(err)
	}
	if e.sandbox, err = st.DomainByName(ctx, e.org.ID, e.org.SandboxDomain); err != nil {
		t.Fatal(err)
	}
	if e.sysKey, err = dkim.GenerateKey(dkim.RSA2048); err != nil {
		t.Fatal(err)
	}
	e.srv, err = zone.New(zone.Config{Zone: testZone, Nameservers: []string{"ns1." + testZone}})
	if err != nil {
		t.Fatal(err)
	}
	e.reload(t)
	if err := e.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.srv.Shutdown(context.Background()) })
	return e
}

// reload rebuilds the zone from the store, as the daemon does on a change.
func (e *zoneEnv) reload(t *testing.T) {
	t.Helper()
	ds, err := e.st.AllDomains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, d := range ds {
		k, err := dkim.ParsePrivateKey(d.DKIMKey)
		if err != nil {
			t.Fatalf("key of %s: %v", d.Name, err)
		}
		keys[d.ID] = k.Public()
	}
	e.srv.Update(e.srv.Serial()+1, ZoneRecords(ds, func(id string) crypto.PublicKey { return keys[id] }, ZoneOptions{
		Zone: testZone, BounceMX: zrBounceMX, SPF: zrSPF, TrackingAddress: zrTrack, SystemKey: e.sysKey.Public(),
	}))
}

func (e *zoneEnv) privateKey(t *testing.T, d store.Domain) crypto.Signer {
	t.Helper()
	k, err := dkim.ParsePrivateKey(d.DKIMKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func txtOf(t *testing.T, k crypto.PublicKey) string {
	t.Helper()
	v, err := dkim.TXTValue(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// query asks the zone server over network ("udp" or "tcp").
func (e *zoneEnv) query(t *testing.T, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	addr := e.srv.UDPAddr().String()
	if network == "tcp" {
		addr = e.srv.TCPAddr().String()
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, dns.TypeToString[qtype], name, err)
	}
	return resp
}

// rdata renders the answer records of type qtype: TXT strings joined, MX
// as "PREF HOST", A as the address.
func rdata(resp *dns.Msg, qtype uint16) []string {
	var out []string
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype != qtype {
			continue
		}
		switch v := rr.(type) {
		case *dns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		case *dns.MX:
			out = append(out, fmt.Sprintf("%d %s", v.Preference, v.Mx))
		case *dns.A:
			out = append(out, v.A.String())
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func TestZoneRecordsServed(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newZoneEnv(t, st)
		newsKey, relaxedKey, sbKey := e.privateKey(t, e.news), e.privateKey(t, e.relaxed), e.privateKey(t, e.sandbox)
		tests := []struct {
			name   string
			qname  string
			qtype  uint16
			rcode  int
			answer []string
		}{
			{name: "rsa dkim key", qname: DKIMTarget("mkt1", e.news.Token, testZone), qtype: dns.TypeTXT,
				answer: []string{txtOf(t, newsKey.Public())}},
			{name: "ed25519 dkim key", qname: DKIMTarget(DefaultSelector, e.relaxed.Token, testZone), qtype: dns.TypeTXT,
				answer: []string{txtOf(t, relaxedKey.Public())}},
			{name: "bounce mx", qname: BounceDomain(e.news.Token, testZone), qtype: dns.TypeMX,
				answer: []string{"10 " + zrBounceMX + "."}},
			{name: "bounce spf", qname: BounceDomain(e.news.Token, testZone), qtype: dns.TypeTXT, answer: []string{zrSPF}},
			{name: "dmarc quarantine", qname: DMARCTarget(e.news.Token, testZone), qtype: dns.TypeTXT,
				answer: []string{"v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@news.example.com"}},
			{name: "dmarc none has no pct", qname: DMARCTarget(e.relaxed.Token, testZone), qtype: dns.TypeTXT,
				answer: []string{"v=DMARC1; p=none; rua=mailto:agg@example.org"}},
			{name: "sandbox key at the name itself", qname: "sg1._domainkey." + e.org.SandboxDomain, qtype: dns.TypeTXT,
				answer: []string{txtOf(t, sbKey.Public())}},
			{name: "system key", qname: "sg1._domainkey." + testZone, qtype: dns.TypeTXT,
				answer: []string{txtOf(t, e.sysKey.Public())}},
			{name: "tracking address", qname: TrackingTarget(testZone), qtype: dns.TypeA, answer: []string{zrTrack}},
			{name: "no dmarc without a policy", qname: DMARCTarget(e.sandbox.Token, testZone), qtype: dns.TypeTXT,
				rcode: dns.RcodeNameError},
			{name: "unknown token", qname: DKIMTarget("mkt1", "aaaaaaaaaaaaaaaa", testZone), qtype: dns.TypeTXT,
				rcode: dns.RcodeNameError},
			{name: "customer name is not ours", qname: "mkt1._domainkey.news.example.com", qtype: dns.TypeTXT,
				rcode: dns.RcodeRefused},
		}
		for _, network := range []string{"udp", "tcp"} {
			for _, tt := range tests {
				t.Run(network+"/"+tt.name, func(t *testing.T) {
					resp := e.query(t, network, tt.qname, tt.qtype)
					if resp.Rcode != tt.rcode {
						t.Fatalf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
					}
					if got := rdata(resp, tt.qtype); strings.Join(got, "|") != strings.Join(tt.answer, "|") {
						t.Errorf("answer %q, want %q", got, tt.answer)
					}
					switch tt.rcode {
					case dns.RcodeSuccess:
						if !resp.Authoritative {
							t.Error("answer without AA")
						}
					case dns.RcodeNameError:
						if len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != dns.TypeSOA {
							t.Errorf("NXDOMAIN authority %v, want the SOA", resp.Ns)
						}
					}
				})
			}
		}

		// An RSA key record is longer than 255 bytes: it is split.
		resp := e.query(t, "udp", DKIMTarget("mkt1", e.news.Token, testZone), dns.TypeTXT)
		txt := resp.Answer[0].(*dns.TXT)
		if len(txt.Txt) < 2 {
			t.Errorf("rsa key served as %d string(s), want split", len(txt.Txt))
		}
		for i, s := range txt.Txt {
			if len(s) > 255 {
				t.Errorf("string %d is %d bytes", i, len(s))
			}
		}
	})
}

func TestZoneRecordsDeletedDomainLeavesZone(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newZoneEnv(t, st)
		if err := e.svc.Delete(context.Background(), e.org, e.relaxed.Name); err != nil {
			t.Fatal(err)
		}
		e.reload(t)
		for _, name := range []string{
			DKIMTarget(DefaultSelector, e.relaxed.Token, testZone),
			BounceDomain(e.relaxed.Token, testZone),
			DMARCTarget(e.relaxed.Token, testZone),
		} {
			if resp := e.query(t, "udp", name, dns.TypeTXT); resp.Rcode != dns.RcodeNameError {
				t.Errorf("%s after delete: %s, want NXDOMAIN", name, dns.RcodeToString[resp.Rcode])
			}
		}
		if resp := e.query(t, "udp", DKIMTarget("mkt1", e.news.Token, testZone), dns.TypeTXT); len(resp.Answer) != 1 {
			t.Errorf("the other domain's key is gone: %v", resp)
		}
	})
}

// lookupVia resolves a TXT name like a recursive resolver would: the
// customer's server (dnstest) answers the customer name with the CNAME the
// customer published, the provider zone answers the target.
func lookupVia(t *testing.T, customer *dnstest.Server, e *zoneEnv) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		target := name
		if !dns.IsSubDomain(testZone+".", dns.Fqdn(name)) {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
			resp, err := dns.Exchange(m, customer.Addr())
			if err != nil {
				return nil, err
			}
			if len(resp.Answer) != 1 || resp.Answer[0].Header().Rrtype != dns.TypeCNAME {
				return nil, fmt.Errorf("no CNAME at %s: %v", name, resp.Answer)
			}
			target = resp.Answer[0].(*dns.CNAME).Target
		}
		return rdata(e.query(t, "udp", target, dns.TypeTXT), dns.TypeTXT), nil
	}
}

func TestZoneRecordsSignatureVerifiesThroughZone(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newZoneEnv(t, st)
		customer := dnstest.NewServer(t)
		customer.Reset(t, okRRs(recordsOf(t, e.news)), nil, nil)
		tests := []struct {
			name     string
			domain   store.Domain
			selector string
		}{
			{name: "customer domain through its CNAME", domain: e.news, selector: "mkt1"},
			{name: "sandbox domain inside the zone", domain: e.sandbox, selector: DefaultSelector},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				msg := "From: a@" + tt.domain.Name + "\r\nTo: b@example.net\r\nSubject: hi\r\n" +
					"Date: Sat, 01 Mar 2025 12:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nHello.\r\n"
				sig, err := dkim.Sign(strings.NewReader(msg), tt.domain.Name, tt.selector, e.privateKey(t, tt.domain))
				if err != nil {
					t.Fatal(err)
				}
				vs, err := msgauth.VerifyWithOptions(bytes.NewReader([]byte(sig+msg)),
					&msgauth.VerifyOptions{LookupTXT: lookupVia(t, customer, e)})
				if err != nil || len(vs) != 1 {
					t.Fatalf("verify: %v, %d results", err, len(vs))
				}
				if vs[0].Err != nil || vs[0].Domain != tt.domain.Name {
					t.Errorf("signature of %s: %v (d=%s)", tt.domain.Name, vs[0].Err, vs[0].Domain)
				}
			})
		}
	})
}

func TestZoneRecordsDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dig (dnsutils) is required in CI: %v", err)
		}
		t.Skip("dig (dnsutils) not installed")
	}
	e := newZoneEnv(t, storetest.SQLite(t))
	_, port, _ := net.SplitHostPort(e.srv.UDPAddr().String())
	name := DKIMTarget("mkt1", e.news.Token, testZone)
	for _, proto := range []string{"+notcp", "+tcp"} {
		out, err := exec.Command(dig, "@127.0.0.1", "-p", port, "+time=2", "+tries=1", proto, "TXT", name, "+short").CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", proto, err, out)
		}
		// +short prints the strings quoted and separated by spaces.
		got := strings.TrimSpace(string(out))
		got = strings.ReplaceAll(strings.Trim(got, `"`), `" "`, "")
		if want := txtOf(t, e.privateKey(t, e.news).Public()); got != want {
			t.Errorf("dig %s TXT %s:\n got %q\nwant %q", proto, name, got, want)
		}
	}
}
