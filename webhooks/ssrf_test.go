package webhooks_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

// TestCheckURL: at creation, IP literals in forbidden ranges and
// localhost names are refused unless allowPrivate; names are left to the
// dial-time check; anything but http(s) with a host is invalid.
func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url       string
		forbidden bool // refused with ErrForbiddenTarget unless allowPrivate
		invalid   bool // refused whatever allowPrivate
	}{
		{url: "http://127.0.0.1/hook", forbidden: true},
		{url: "http://127.8.9.10:8080/hook", forbidden: true},
		{url: "http://[::1]:8080/hook", forbidden: true},
		{url: "http://[::ffff:127.0.0.1]/hook", forbidden: true},
		{url: "http://10.1.2.3/hook", forbidden: true},
		{url: "http://172.16.0.1/hook", forbidden: true},
		{url: "http://192.168.1.1/hook", forbidden: true},
		{url: "http://169.254.169.254/latest/meta-data/", forbidden: true},
		{url: "http://[fe80::1]/hook", forbidden: true},
		{url: "http://[fd00::1]/hook", forbidden: true},
		{url: "http://100.64.0.1/hook", forbidden: true},
		{url: "http://0.0.0.0/hook", forbidden: true},
		{url: "http://0.1.2.3/hook", forbidden: true},
		{url: "http://[::]/hook", forbidden: true},
		{url: "http://255.255.255.255/hook", forbidden: true},
		{url: "http://224.0.0.1/hook", forbidden: true},
		{url: "http://[64:ff9b::a9fe:a9fe]/hook", forbidden: true}, // NAT64 of 169.254.169.254
		{url: "http://localhost:8080/hook", forbidden: true},
		{url: "http://api.LOCALHOST/hook", forbidden: true},
		{url: "https://hooks.example.com/sendergate"},
		{url: "http://93.184.216.34/hook"},
		{url: "https://[2606:4700::1111]/hook"},
		{url: "http://[64:ff9b::5db8:d822]/hook"}, // NAT64 of a public address
		{url: "http://hook.example.test/"},        // a name: checked at dial
		{url: "ftp://hooks.example.com/", invalid: true},
		{url: "http:///hook", invalid: true},
		{url: "javascript:alert(1)", invalid: true},
		{url: "hooks.example.com/hook", invalid: true},
	} {
		err := webhooks.CheckURL(tc.url, false)
		switch {
		case tc.invalid:
			if err == nil || errors.Is(err, webhooks.ErrForbiddenTarget) {
				t.Errorf("CheckURL(%q, false) = %v, want invalid", tc.url, err)
			}
		case tc.forbidden:
			if !errors.Is(err, webhooks.ErrForbiddenTarget) {
				t.Errorf("CheckURL(%q, false) = %v, want ErrForbiddenTarget", tc.url, err)
			}
		case err != nil:
			t.Errorf("CheckURL(%q, false) = %v, want nil", tc.url, err)
		}
		if err := webhooks.CheckURL(tc.url, true); (err != nil) != tc.invalid {
			t.Errorf("CheckURL(%q, true) = %v, want invalid=%v", tc.url, err, tc.invalid)
		}
	}
}

// TestForbidden covers the address predicate on its own, including the
// embedded forms.
func TestForbidden(t *testing.T) {
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.0.0.1": true, "169.254.169.254": true, "fe80::1": true,
		"::ffff:10.0.0.1": true, "64:ff9b::7f00:1": true, "64:ff9b:1::1": true, "198.18.0.1": true,
		"192.0.0.170": true, "240.0.0.1": true, "fec0::1": true, "ff02::1": true,
		"8.8.8.8": false, "2001:4860:4860::8888": false, "64:ff9b::808:808": false, "100.128.0.1": false,
	} {
		if got := webhooks.Forbidden(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Forbidden(%s) = %v, want %v", ip, got, want)
		}
	}
}

// TestDialRefusesPrivateTargets: without AllowPrivate the Deliverer
// refuses, at dial, every forbidden address, including a host name that
// resolves (through a real DNS server) to loopback, and localhost; the
// loopback receiver is never reached and the attempt records why. With
// AllowPrivate the same name is delivered to.
func TestDialRefusesPrivateTargets(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer target.Close()
	port := target.Listener.Addr().(*net.TCPAddr).Port
	ns := dnstest.NewServer(t)
	ns.Add(t, "hook.example.test. 300 IN A 127.0.0.1")
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ns.Addr())
	}}
	hostPort := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/hook" }
	s := storetest.SQLite(t)
	for _, u := range []string{
		target.URL + "/hook",
		hostPort("hook.example.test"),
		hostPort("localhost"),
		hostPort("::1"),
		hostPort("::ffff:127.0.0.1"),
		"http://10.0.0.1:9/hook",
		"http://169.254.169.254/latest/meta-data/",
	} {
		org := newOrg(t, s)
		wh := newWebhook(t, s, org, u, "whsec_x")
		verified(t, s, org, "example.com", time.Now())
		d := webhooks.New(webhooks.Options{Store: s, Resolver: resolver})
		if _, err := d.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds, _ := s.Deliveries(context.Background(), wh.ID, 1)
		if len(ds) != 1 || ds[0].Status != store.DeliveryPending || ds[0].LastStatusCode != 0 || !strings.Contains(ds[0].LastError, "not allowed") {
			t.Errorf("%s: deliveries %+v, want pending, refused as not allowed", u, ds)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback receiver was reached %d times", hits.Load())
	}

	org := newOrg(t, s)
	wh := newWebhook(t, s, org, hostPort("hook.example.test"), "whsec_x")
	verified(t, s, org, "example.com", time.Now())
	d := webhooks.New(webhooks.Options{Store: s, Resolver: resolver, AllowPrivate: true})
	if _, err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Deliveries(context.Background(), wh.ID, 1); len(ds) != 1 || ds[0].Status != store.DeliveryDelivered || hits.Load() != 1 {
		t.Errorf("with AllowPrivate: deliveries %+v, hits %d; want delivered through the resolver", ds, hits.Load())
	}
}

// TestRedirectNotFollowed: a receiver redirecting (302, 307, 308) to the
// metadata address or to a loopback service is not followed: the target
// is never reached and the attempt records the redirect's status as a
// failure to retry.
func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer internal.Close()
	s := storetest.SQLite(t)
	for _, tc := range []struct {
		code int
		to   string
	}{
		{http.StatusFound, internal.URL + "/admin"},
		{http.StatusTemporaryRedirect, internal.URL + "/admin"},
		{http.StatusPermanentRedirect, "http://169.254.169.254/latest/meta-data/"},
	} {
		redir := httptest.NewServer(http.RedirectHandler(tc.to, tc.code))
		org := newOrg(t, s)
		wh := newWebhook(t, s, org, redir.URL, "whsec_x")
		verified(t, s, org, "example.com", time.Now())
		// AllowPrivate, because the redirecting receiver is on loopback too.
		d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true})
		if _, err := d.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		redir.Close()
		ds, _ := s.Deliveries(context.Background(), wh.ID, 1)
		if len(ds) != 1 || ds[0].Status != store.DeliveryPending || ds[0].LastStatusCode != tc.code {
			t.Errorf("%d to %s: deliveries %+v, want pending with %d", tc.code, tc.to, ds, tc.code)
		}
		if hits.Load() != 0 {
			t.Fatalf("%d redirect to %s was followed", tc.code, tc.to)
		}
	}
}
