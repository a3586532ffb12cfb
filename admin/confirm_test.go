package admin_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// form is an HTML form as a browser would submit it.
type form struct {
	method, action string
	values         url.Values
	buttons        []string
}

// parseForms returns the forms of an HTML page, each with the values of
// its inputs and the text of its buttons.
func parseForms(t *testing.T, page []byte) []form {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("page is not HTML: %v", err)
	}
	attr := func(n *html.Node, key string) string {
		for _, a := range n.Attr {
			if a.Key == key {
				return a.Val
			}
		}
		return ""
	}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var forms []form
	var walk func(n *html.Node, f *form)
	walk = func(n *html.Node, f *form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				forms = append(forms, form{method: strings.ToUpper(attr(n, "method")), action: attr(n, "action"), values: url.Values{}})
				f = &forms[len(forms)-1]
			case "input":
				if f != nil && attr(n, "name") != "" {
					f.values.Add(attr(n, "name"), attr(n, "value"))
				}
			case "button":
				if f != nil {
					f.buttons = append(f.buttons, strings.TrimSpace(text(n)))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, f)
		}
	}
	walk(doc, nil)
	return forms
}

// submit posts f as a browser does from pageURL: the action resolved
// against the page, application/x-www-form-urlencoded, plus headers
// (Origin, Sec-Fetch-Site: what the browser would add).
func (e *env) submit(pageURL string, f form, headers map[string]string) response {
	e.t.Helper()
	base, err := url.Parse(pageURL)
	if err != nil {
		e.t.Fatal(err)
	}
	action, err := base.Parse(f.action)
	if err != nil {
		e.t.Fatalf("form action %q: %v", f.action, err)
	}
	req, err := http.NewRequest(f.method, action.String(), strings.NewReader(f.values.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return e.send(req)
}

// addressStatus returns the listed status of email in o.
func (e *env) addressStatus(o org, email string) string {
	e.t.Helper()
	var l struct{ Addresses []addressOut }
	e.do("GET", "/v1/orgs/"+o.name+"/addresses", o.key, nil).must(e.t, http.StatusOK, &l)
	for _, a := range l.Addresses {
		if a.Email == email {
			return a.Status
		}
	}
	e.t.Fatalf("%s not listed: %+v", email, l.Addresses)
	return ""
}

// wantPageHeaders asserts the headers every confirmation page carries.
func wantPageHeaders(t *testing.T, what string, r response) {
	t.Helper()
	h := r.header
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Cache-Control") != "no-store" ||
		h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: headers %v", what, h)
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("%s: Content-Security-Policy %q, want no script at all and no framing", what, csp)
	}
}

// TestConfirmPageNeedsThePost: opening the link (GET, HEAD: what link
// scanners do) shows a Confirm button and confirms nothing; submitting
// the page's form confirms; the form submitted from another site is
// refused.
func TestConfirmPageNeedsThePost(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.verifiedDomain(o, map[string]any{"name": "example.com"})
		add := func(email string) (token, link string) {
			t.Helper()
			e.do("POST", "/v1/orgs/acme/addresses", o.key, map[string]string{"email": email}).must(t, http.StatusAccepted, nil)
			token = e.lastToken(email)
			return token, e.url + "/confirm?token=" + token
		}
		tok, link := add("news@example.com")

		// A scanner: HEAD, then GET, several times.
		head, err := http.NewRequest("HEAD", link, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.send(head); r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD: %d %q", r.status, r.body)
		}
		var page response
		for range 3 {
			page = e.do("GET", strings.TrimPrefix(link, e.url), "", nil)
			if page.status != http.StatusOK {
				t.Fatalf("GET: %d %s", page.status, page.body)
			}
		}
		if s := e.addressStatus(o, "news@example.com"); s != "pending" {
			t.Fatalf("after HEAD and GETs: %s, want pending", s)
		}
		wantPageHeaders(t, "GET", page)
		if n := strings.Count(string(page.body), tok); n != 1 {
			t.Errorf("the token appears %d times in the page, want once (the hidden field)", n)
		}
		if !strings.Contains(string(page.body), "news@example.com") {
			t.Errorf("the page does not say which address: %s", page.body)
		}
		forms := parseForms(t, page.body)
		if len(forms) != 1 {
			t.Fatalf("%d forms in %s", len(forms), page.body)
		}
		f := forms[0]
		if f.method != "POST" || f.values.Get("token") != tok || len(f.values) != 1 ||
			len(f.buttons) != 1 || f.buttons[0] != "Confirm" {
			t.Fatalf("form %+v, want a POST of the token with a Confirm button", f)
		}

		// The same form from elsewhere: refused, still pending.
		for _, h := range []map[string]string{
			{"Origin": "https://evil.example"},
			{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
			{"Origin": strings.Replace(e.url, "127.0.0.1", "localhost", 1)}, // another origin, same server
			{"Sec-Fetch-Site": "cross-site"},
			{"Sec-Fetch-Site": "same-site"},
			{"Origin": e.url, "Sec-Fetch-Site": "same-site"},
			{"Origin": "null"}, // sandboxed or redirected: no proof of where it came from
			{"Origin": "null", "Sec-Fetch-Site": "cross-site"},
		} {
			r := e.submit(link, f, h)
			if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "another web site") {
				t.Errorf("form with %v: %d %s, want 403", h, r.status, r.body)
			}
			wantPageHeaders(t, "403", r)
		}
		// The token only counts in the body, never in the URL.
		if r := e.do("POST", "/confirm?token="+tok, "", nil); r.status != http.StatusNotFound {
			t.Errorf("POST with the token in the URL: %d, want 404", r.status)
		}
		if s := e.addressStatus(o, "news@example.com"); s != "pending" {
			t.Fatalf("after refused posts: %s, want pending", s)
		}

		// The browser: the page's own origin.
		r := e.submit(link, f, map[string]string{"Origin": e.url, "Sec-Fetch-Site": "same-origin"})
		if r.status != http.StatusOK || !strings.Contains(string(r.body), "news@example.com is now confirmed") {
			t.Fatalf("submitting the page's form: %d %s", r.status, r.body)
		}
		wantPageHeaders(t, "POST", r)
		if s := e.addressStatus(o, "news@example.com"); s != "confirmed" {
			t.Fatalf("after the form: %s, want confirmed", s)
		}
		// The link again: already used, no button.
		again := e.do("GET", strings.TrimPrefix(link, e.url), "", nil)
		if again.status != http.StatusConflict || len(parseForms(t, again.body)) != 0 || strings.Contains(string(again.body), tok) {
			t.Errorf("GET after confirming: %d %s", again.status, again.body)
		}

		// A browser that nulls Origin because of the page's no-referrer
		// policy still proves same-origin with Sec-Fetch-Site.
		_, link2 := add("help@example.com")
		f2 := parseForms(t, e.do("GET", strings.TrimPrefix(link2, e.url), "", nil).body)[0]
		if r := e.submit(link2, f2, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}); r.status != http.StatusOK {
			t.Errorf("Origin null with Sec-Fetch-Site same-origin: %d %s", r.status, r.body)
		}
		// A client that is no browser (curl) sends neither header.
		_, link3 := add("ops@example.com")
		f3 := parseForms(t, e.do("GET", strings.TrimPrefix(link3, e.url), "", nil).body)[0]
		if r := e.submit(link3, f3, nil); r.status != http.StatusOK {
			t.Errorf("no Origin, no Sec-Fetch-Site: %d %s", r.status, r.body)
		}
		if s := e.addressStatus(o, "help@example.com") + e.addressStatus(o, "ops@example.com"); s != "confirmedconfirmed" {
			t.Errorf("statuses %s", s)
		}
	})
}

// TestConfirmPageStates: the page of a link that cannot be used says why,
// offers no button and never echoes what was sent.
func TestConfirmPageStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	o := e.createOrg("acme")
	e.verifiedDomain(o, map[string]any{"name": "example.com"})
	e.do("POST", "/v1/orgs/acme/addresses", o.key, map[string]string{"email": "late@example.com"}).must(t, http.StatusAccepted, nil)
	late := e.lastToken("late@example.com")
	e.clock.Add(25 * time.Hour)
	evil := `"><script>alert(1)</script>` + strings.Repeat("a", 30)
	for _, tc := range []struct {
		query  string
		status int
		text   string
	}{
		{"?token=" + late, http.StatusGone, "expired"},
		{"?token=" + strings.Repeat("x", 43), http.StatusNotFound, "not valid"},
		{"?token=" + url.QueryEscape(evil), http.StatusNotFound, "not valid"},
		{"", http.StatusNotFound, "not valid"},
	} {
		r := e.do("GET", "/confirm"+tc.query, "", nil)
		wantPageHeaders(t, "GET /confirm"+tc.query, r)
		body := string(r.body)
		if r.status != tc.status || !strings.Contains(body, tc.text) || len(parseForms(t, r.body)) != 0 ||
			strings.Contains(body, late) || strings.Contains(body, "<script>") || strings.Contains(body, "aaaaaaaaaa") {
			t.Errorf("GET /confirm%s: %d %s", tc.query, r.status, body)
		}
	}
	if s := e.addressStatus(o, "late@example.com"); s != "expired" {
		t.Errorf("listed %s, want expired", s)
	}
	// The expired token posted: 410, the page says what to do.
	r := e.submit(e.url+"/confirm", form{method: "POST", action: "confirm", values: url.Values{"token": {late}}}, map[string]string{"Origin": e.url})
	if r.status != http.StatusGone || !strings.Contains(string(r.body), "send a new one") {
		t.Errorf("POST of an expired token: %d %s", r.status, r.body)
	}
}
