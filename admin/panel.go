package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// The Senders Authorization panel: the browser tab an organization works
// in, served at / on the admin listener. The page is a static shell
// rendered once with html/template; a little JavaScript (panel/assets,
// embedded, no build step, no third-party code) does everything through
// the public /v1 API with the key the user signed in with, held in the
// tab's sessionStorage and sent as the bearer header. No route here reads
// a key or serves data: the shell is the same for everybody.
//
// The page runs no inline script (CSP script-src 'self'), submits no form
// to the server (form-action 'none': a key typed into the sign-in form can
// never end up in a URL, even if the script failed to load), connects
// only to its own origin, and cannot be framed.

//go:embed panel/index.html panel/assets
var panelFS embed.FS

// panelCSP is the Content-Security-Policy of the panel page.
const panelCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// panelAsset is one embedded static file, with what it is served with.
type panelAsset struct {
	body        []byte
	contentType string
	etag        string // a strong ETag: the content's hash
}

// statusInfo is a domain status as the panel shows it: the word of the
// badge (the accessible names users and tests rely on) and what it means.
type statusInfo struct {
	Status, Word, Meaning string
}

// domainStatuses are the lifecycle statuses, in lifecycle order. The page
// renders them as its legend, and the script takes its badge words from
// there, so the words live in one place.
var domainStatuses = []statusInfo{
	{"pending", "Pending", "Added, not verified yet: publish the records at your DNS provider, then press Verify. Mail from it is refused."},
	{"verified", "Verified", "The records are in place: mail from the domain is accepted, signed and sent."},
	{"failing", "Failing", "Recent checks missed a record. Mail is still accepted until the grace period ends: put the record back."},
	{"revoked", "Revoked", "Failing for longer than the grace period: mail is refused until the records verify again."},
}

// statusWord returns the badge word of a domain status, or the status
// itself, capitalized, for one the panel does not know.
func statusWord(status string) string {
	for _, s := range domainStatuses {
		if s.Status == status {
			return s.Word
		}
	}
	if status == "" {
		return "Unknown"
	}
	return strings.ToUpper(status[:1]) + status[1:]
}

// panelData is what the page template shows.
type panelData struct {
	Zone, SandboxZone string
	Statuses          []statusInfo
}

// panel holds the rendered page and the assets.
type panel struct {
	page   []byte
	assets map[string]panelAsset
}

// newPanel loads the embedded assets and renders the page for the
// configured zones; an asset the template names that does not exist is an
// error, not a broken page.
func newPanel(zone, sandboxZone string) (*panel, error) {
	p := &panel{assets: map[string]panelAsset{}}
	err := fs.WalkDir(panelFS, "panel/assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := panelFS.ReadFile(name)
		if err != nil {
			return err
		}
		p.assets[path.Base(name)] = newPanelAsset(path.Base(name), body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin: panel assets: %w", err)
	}
	tmpl, err := template.New("index.html").Funcs(template.FuncMap{
		"asset":      p.assetURL,
		"statusWord": statusWord,
	}).ParseFS(panelFS, "panel/index.html")
	if err != nil {
		return nil, fmt.Errorf("admin: panel template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, panelData{Zone: zone, SandboxZone: sandboxZone, Statuses: domainStatuses}); err != nil {
		return nil, fmt.Errorf("admin: panel template: %w", err)
	}
	p.page = buf.Bytes()
	return p, nil
}

func newPanelAsset(name string, body []byte) panelAsset {
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // the system's MIME table may lack or differ on these
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	return panelAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// assetURL is the template's asset helper: the path of an embedded asset
// with a version from its content, so that a browser never runs a stale
// script after an upgrade. An unknown name is an error.
func (p *panel) assetURL(name string) (string, error) {
	a, ok := p.assets[name]
	if !ok {
		return "", fmt.Errorf("no panel asset %q", name)
	}
	return "/assets/" + name + "?v=" + strings.Trim(a.etag, `"`), nil
}

func (s *Server) panelRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /", s.servePanel) // and HEAD; any other path is the JSON 404
	m.HandleFunc("GET /assets/{file}", s.servePanelAsset)
}

// servePanel answers the page at exactly "/"; every other GET that no
// route serves is the API's JSON "no such route".
func (s *Server) servePanel(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		s.notFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", panelCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	_, _ = w.Write(s.panel.page)
}

// servePanelAsset serves an embedded script, style sheet or icon. They
// hold no data, so browsers may keep them, revalidating with the ETag.
func (s *Server) servePanelAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.panel.assets[r.PathValue("file")]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "file", "no such panel asset: "+r.PathValue("file"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
