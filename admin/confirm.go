package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/store"
)

// The confirmation page. The link in the email (GET /confirm?token=...)
// only shows a page with a Confirm button; mail security scanners that
// prefetch links therefore confirm nothing. The button POSTs the token
// (form field, not the URL) to /confirm, and only that POST, or
// POST /v1/confirm, confirms.
//
// The page carries the token only in the form's hidden field
// (HTML-escaped by html/template), is never cached, sends no Referer
// (Referrer-Policy: no-referrer: its URL holds the token), runs no script
// (a CSP without script-src), and cannot be framed (X-Frame-Options DENY,
// frame-ancestors 'none'), so nobody can overlay the button.

// pageStyle is the page's only CSS; the CSP admits it by hash.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}` +
	`h1{font-size:1.4em}button{font-size:1.1em;padding:.5em 1.5em;cursor:pointer}`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{- if .Token}}
<form method="post" action="confirm"><input type="hidden" name="token" value="{{.Token}}"><button type="submit">Confirm</button></form>
{{- end}}
</body></html>
`))

// page is what the template shows. Token is set only on the page that
// offers the Confirm button.
type page struct {
	status             int
	Title, Text, Token string
}

// writePage answers an HTML page with the headers every confirmation page
// carries.
func writePage(w http.ResponseWriter, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.status)
	_ = confirmTmpl.Execute(w, p)
}

// refusal is the page for a token that cannot be used, or for an error:
// never the token, never internal detail.
func (s *Server) refusal(w http.ResponseWriter, err error) page {
	switch {
	case errors.Is(err, addresses.ErrExpired):
		return page{status: http.StatusGone, Title: "Link expired",
			Text: "This confirmation link has expired. Ask the sender to send a new one."}
	case errors.Is(err, addresses.ErrUsed):
		return page{status: http.StatusConflict, Title: "Already used",
			Text: "This confirmation link was already used; the address is confirmed."}
	case errors.Is(err, addresses.ErrUnknown):
		return page{status: http.StatusNotFound, Title: "Unknown link",
			Text: "This confirmation link is not valid. Check that it was copied whole, or use the newest email: each resend replaces the previous link."}
	case store.IsUnavailable(err):
		s.opts.Logger.Warn("confirmation page: database unreachable", "err", err)
		setRetryAfter(w, unavailableRetry)
		return page{status: http.StatusServiceUnavailable, Title: "Try again in a minute",
			Text: "The address cannot be checked right now. The link still works: open it again in a minute."}
	default:
		s.opts.Logger.Error("confirmation failed", "err", err)
		return page{status: http.StatusInternalServerError, Title: "Something went wrong",
			Text: "The address could not be confirmed right now. Try again later."}
	}
}

// confirmPage (GET and HEAD) is the link target of the confirmation email:
// it says what the token would do and offers the Confirm button; it
// changes nothing.
func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	a, err := s.opts.Addresses.Check(r.Context(), token)
	if err != nil {
		writePage(w, s.refusal(w, err))
		return
	}
	writePage(w, page{status: http.StatusOK, Title: "Confirm your sender address", Token: token,
		Text: "Press Confirm to authorize " + a.Email + " as a sender address. If you did not ask for this, close this page: nothing happens unless you press the button."})
}

// maxFormBody bounds the body of the confirmation form (one token).
const maxFormBody = 4 << 10

// confirmForm is the Confirm button's POST: from this server's own page
// (see sameOrigin), with the token in an application/x-www-form-urlencoded
// body.
func (s *Server) confirmForm(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.opts.Logger.Warn("confirmation form from another site refused", "origin", r.Header.Get("Origin"),
			"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
		writePage(w, page{status: http.StatusForbidden, Title: "Not confirmed",
			Text: "This confirmation was sent from another web site, so it was ignored. Open the link from the email and press Confirm on its page."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		writePage(w, page{status: http.StatusBadRequest, Title: "Not confirmed",
			Text: "The form could not be read. Open the link from the email and press Confirm on its page."})
		return
	}
	a, err := s.opts.Addresses.Confirm(r.Context(), r.PostForm.Get("token"))
	if err != nil {
		writePage(w, s.refusal(w, err))
		return
	}
	s.opts.Changed()
	writePage(w, page{status: http.StatusOK, Title: "Address confirmed",
		Text: a.Email + " is now confirmed as a sender address. You can close this page."})
}

// sameOrigin reports whether a form POST comes from this server's own page
// as far as the browser says, so another site cannot submit a token it
// holds through a visitor's browser (and cannot turn the button into a
// click target: the page also refuses framing):
//
//   - Sec-Fetch-Site, when sent, must be same-origin (or none: the user's
//     own action, not a site's).
//   - Origin, when sent, must be the origin of admin.public_url, except
//     "null" together with Sec-Fetch-Site: same-origin. Browsers send
//     Origin: null on a form POST from a page with Referrer-Policy:
//     no-referrer, which this page has (its URL holds the token).
//   - Neither header: not a browser (curl, a script) or a very old one;
//     such a client has no ambient credentials here to abuse, the token it
//     sends is the credential, exactly as with POST /v1/confirm.
//
// The Referer is not used: the page sends none.
func (s *Server) sameOrigin(r *http.Request) bool {
	site := strings.ToLower(r.Header.Get("Sec-Fetch-Site"))
	if site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return true
	case origin == "null":
		return site == "same-origin"
	}
	got, ok := webOrigin(origin)
	return ok && got == s.expectedOrigin(r)
}

// expectedOrigin is the origin of admin.public_url, or without one the
// origin the request itself was sent to.
func (s *Server) expectedOrigin(r *http.Request) string {
	if s.origin != "" {
		return s.origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	o, _ := webOrigin(scheme + "://" + r.Host)
	return o
}

// webOrigin returns the ASCII serialization of raw's origin (RFC 6454:
// scheme://host[:port], lowercase, default port dropped); false unless raw
// is an http or https URL with a host.
func webOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, true
}
