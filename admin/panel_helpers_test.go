package admin

import (
	"strings"
	"testing"
)

func TestStatusWord(t *testing.T) {
	for _, tc := range []struct{ status, want string }{
		{"pending", "Pending"},
		{"verified", "Verified"},
		{"failing", "Failing"},
		{"revoked", "Revoked"},
		{"suspended", "Suspended"}, // unknown: shown capitalized, not hidden
		{"", "Unknown"},
	} {
		if got := statusWord(tc.status); got != tc.want {
			t.Errorf("statusWord(%q) = %q, want %q", tc.status, got, tc.want)
		}
	}
}

func TestAssetURL(t *testing.T) {
	p, err := newPanel("sg.localhost", "sandbox.sg.localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, prefix string
		wantErr      bool
	}{
		{name: "panel.js", prefix: "/assets/panel.js?v="},
		{name: "panel.css", prefix: "/assets/panel.css?v="},
		{name: "favicon.svg", prefix: "/assets/favicon.svg?v="},
		{name: "nope.js", wantErr: true},
		{name: "../index.html", wantErr: true},
	} {
		got, err := p.assetURL(tc.name)
		if (err != nil) != tc.wantErr || !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("assetURL(%q) = %q, %v", tc.name, got, err)
		}
		if err == nil && len(got) != len(tc.prefix)+16 {
			t.Errorf("assetURL(%q) = %q: want a 16-hex-digit version", tc.name, got)
		}
	}
	// The version follows the content: another body, another URL.
	a, b := newPanelAsset("x.js", []byte("a")), newPanelAsset("x.js", []byte("b"))
	if a.etag == b.etag {
		t.Error("two contents have one ETag")
	}
}

func TestPanelAssetTypes(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"panel.js", "text/javascript; charset=utf-8"},
		{"panel.css", "text/css; charset=utf-8"},
		{"favicon.svg", "image/svg+xml"},
		{"LICENSE", "application/octet-stream"},
	} {
		if got := newPanelAsset(tc.name, nil).contentType; got != tc.want {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPanelCSP(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(panelCSP, want) {
			t.Errorf("panel CSP lacks %q: %s", want, panelCSP)
		}
	}
	for _, never := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"} {
		if strings.Contains(panelCSP, never) {
			t.Errorf("panel CSP allows %q: %s", never, panelCSP)
		}
	}
}
