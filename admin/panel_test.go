package admin_test

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/sendergate/sendergate/store/storetest"
)

// page is the panel page, parsed.
type panelPage struct {
	root  *html.Node
	byID  map[string]*html.Node
	nodes []*html.Node // every element, in document order
}

func parsePanel(t *testing.T, body []byte) panelPage {
	t.Helper()
	root, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	p := panelPage{root: root, byID: map[string]*html.Node{}}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			p.nodes = append(p.nodes, n)
			if id := attr(n, "id"); id != "" {
				if p.byID[id] != nil {
					t.Errorf("id %q used twice", id)
				}
				p.byID[id] = n
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return p
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestPanelPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	r := e.do("GET", "/", "", nil)
	r.must(t, http.StatusOK, nil)
	for h, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// The page is the same for everybody: a request with the admin key
	// gets the same bytes, and the key is not in them.
	withKey := e.do("GET", "/", testAdminKey, nil)
	if !bytes.Equal(withKey.body, r.body) || bytes.Contains(withKey.body, []byte(testAdminKey)) {
		t.Error("the page depends on the request's key")
	}
	if e.do("HEAD", "/", "", nil).status != http.StatusOK {
		t.Error("HEAD / is not served")
	}

	p := parsePanel(t, r.body)
	for _, n := range p.nodes {
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") || a.Key == "style" {
				t.Errorf("<%s %s=%q>: inline script or style (the CSP would block it)", n.Data, a.Key, a.Val)
			}
			if (a.Key == "src" || a.Key == "href") && !strings.HasPrefix(a.Val, "/") && !strings.HasPrefix(a.Val, "#") {
				t.Errorf("<%s %s=%q>: not on this server", n.Data, a.Key, a.Val)
			}
		}
		switch n.Data {
		case "script":
			if attr(n, "src") == "" || strings.TrimSpace(textOf(n)) != "" {
				t.Errorf("inline script: %s", textOf(n))
			}
		case "style":
			t.Error("inline <style> (the CSP admits only the style sheet)")
		case "form":
			if hasAttr(n, "action") || hasAttr(n, "method") {
				t.Errorf("form %s submits to the server; the script sends everything to the API", attr(n, "id"))
			}
		}
	}
	checkLabels(t, p)
	checkNames(t, p)
	checkAssets(t, e, p)
}

// checkLabels: every form field has a label, and every id reference
// (label for, aria-describedby, aria-labelledby) resolves.
func checkLabels(t *testing.T, p panelPage) {
	t.Helper()
	labelled := map[string]bool{}
	for _, n := range p.nodes {
		if n.Data == "label" && attr(n, "for") != "" {
			labelled[attr(n, "for")] = true
		}
		for _, key := range []string{"for", "aria-describedby", "aria-labelledby"} {
			for _, id := range strings.Fields(attr(n, key)) {
				if p.byID[id] == nil && n.Data != "output" {
					t.Errorf("<%s %s=%q>: no element %q", n.Data, key, attr(n, key), id)
				}
			}
		}
	}
	fields := 0
	for _, n := range p.nodes {
		if n.Data != "input" && n.Data != "select" && n.Data != "textarea" {
			continue
		}
		fields++
		if !labelled[attr(n, "id")] && attr(n, "aria-label") == "" && attr(n, "aria-labelledby") == "" {
			t.Errorf("<%s id=%q> has no label", n.Data, attr(n, "id"))
		}
	}
	if fields < 12 {
		t.Errorf("only %d form fields: the page lost its forms", fields)
	}
}

// checkNames: the accessible names users and tests rely on (SPEC, "The
// panel") are the texts of the controls and the status words.
func checkNames(t *testing.T, p panelPage) {
	t.Helper()
	controls := map[string]string{}
	for _, n := range p.nodes {
		if n.Data == "button" || n.Data == "summary" {
			controls[textOf(n)] = n.Data
		}
	}
	for name, tag := range map[string]string{"+ Add Domain": "button", "Advanced Settings": "summary", "Next": "button",
		"Verify": "button", "Delete": "button", "Sign in": "button", "Sign out": "button",
		"Copy all as a zone-file snippet": "button", "Copy": "button"} {
		if controls[name] != tag {
			t.Errorf("no <%s> named %q", tag, name)
		}
	}
	if adv := p.byID["advanced"]; adv == nil || hasAttr(adv, "open") {
		t.Error("Advanced Settings must be a <details> closed by default")
	}
	words := map[string]string{}
	for _, n := range p.nodes {
		if s := attr(n, "data-status"); s != "" {
			words[s] = textOf(n)
		}
	}
	for status, word := range map[string]string{"pending": "Pending", "verified": "Verified", "failing": "Failing", "revoked": "Revoked"} {
		if words[status] != word {
			t.Errorf("status %s shown as %q, want %q", status, words[status], word)
		}
	}
}

// checkAssets: every asset the page loads is served with its type, an
// ETag that revalidates, and nosniff; the scripts import only each other.
func checkAssets(t *testing.T, e *env, p panelPage) {
	t.Helper()
	importRE := regexp.MustCompile(`(?ms)^import\s[^;]*?from "([^"]+)";`)
	seen := map[string]bool{}
	var fetch func(path, wantType string)
	fetch = func(path, wantType string) {
		if seen[path] {
			return
		}
		seen[path] = true
		r := e.do("GET", path, "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), wantType) || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
			return
		}
		req, _ := http.NewRequest("GET", e.url+path, nil)
		req.Header.Set("If-None-Match", r.header.Get("ETag"))
		if again := e.send(req); again.status != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", path, again.status)
		}
		if wantType != "text/javascript" {
			return
		}
		for _, sink := range []string{"innerHTML", "outerHTML =", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if bytes.Contains(r.body, []byte(sink)) {
				t.Errorf("%s uses %s: data must go into the page as text", path, sink)
			}
		}
		for _, m := range importRE.FindAllSubmatch(r.body, -1) {
			imp := string(m[1])
			if !strings.HasPrefix(imp, "./") {
				t.Errorf("%s imports %q: only the panel's own modules", path, imp)
				continue
			}
			fetch("/assets/"+strings.TrimPrefix(imp, "./"), "text/javascript")
		}
	}
	types := map[string]string{"script": "text/javascript", "link": ""}
	for _, n := range p.nodes {
		want, ok := types[n.Data]
		if !ok {
			continue
		}
		src := attr(n, "src") + attr(n, "href")
		if n.Data == "link" {
			want = map[string]string{"stylesheet": "text/css", "icon": "image/svg+xml"}[attr(n, "rel")]
		}
		fetch(src, want)
	}
	if len(seen) < 6 {
		t.Errorf("only %d assets reached from the page: %v", len(seen), seen)
	}
}

func TestPanelRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	for _, tc := range []struct {
		method, path string
		status       int
		catchAll     bool
	}{
		{"GET", "/assets/nope.js", http.StatusNotFound, false},
		{"GET", "/assets/", http.StatusNotFound, true},
		{"GET", "/index.html", http.StatusNotFound, true},
		{"GET", "/panel/index.html", http.StatusNotFound, true},
		{"POST", "/", http.StatusNotFound, true},
		{"POST", "/assets/panel.js", http.StatusNotFound, true},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		if r.status != tc.status || isCatchAll(r) != tc.catchAll || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
	}
}
