package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
)

// DomainService runs the domain workflow for the API (package domains).
type DomainService interface {
	// CreateWithDKIM registers a domain and returns it with the DKIM part
	// of its output.
	CreateWithDKIM(ctx context.Context, org store.Org, in domains.Input) (store.Domain, domains.DKIMInfo, error)
	Verify(ctx context.Context, org store.Org, name string) (store.Domain, error)
	SetAccess(ctx context.Context, org store.Org, name string, restricted bool, accounts []string) (store.Domain, error)
	Delete(ctx context.Context, org store.Org, name string) error
	// DKIM is the DKIM part of a domain's output: its keys and rotation.
	DKIM(ctx context.Context, d store.Domain) (domains.DKIMInfo, error)
	// Rotate switches signing to the next key after its DNS check
	// (*domains.CheckError when it fails).
	Rotate(ctx context.Context, org store.Org, name, algorithm string) (store.Domain, error)
	// SetBYOK makes a key the customer publishes the signing key.
	SetBYOK(ctx context.Context, org store.Org, name, selector, privateKey string) (store.Domain, error)
}

func (s *Server) domainRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/orgs/{org}/domains", s.inOrg(s.createDomain))
	m.HandleFunc("GET /v1/orgs/{org}/domains", s.inOrg(s.listDomains))
	m.HandleFunc("GET /v1/orgs/{org}/domains/{domain}", s.inOrg(s.getDomain))
	m.HandleFunc("DELETE /v1/orgs/{org}/domains/{domain}", s.inOrg(s.deleteDomain))
	m.HandleFunc("POST /v1/orgs/{org}/domains/{domain}/verify", s.inOrg(s.verifyDomain))
	m.HandleFunc("PUT /v1/orgs/{org}/domains/{domain}/access", s.inOrg(s.setAccess))
	m.HandleFunc("GET /v1/orgs/{org}/domains/{domain}/events", s.inOrg(s.domainEvents))
}

type accessJSON struct {
	Restricted bool     `json:"restricted"`
	Accounts   []string `json:"accounts"`
}

type domainJSON struct {
	Name             string           `json:"name"`
	Sandbox          bool             `json:"sandbox,omitempty"`
	Status           string           `json:"status"`
	ReturnPath       string           `json:"return_path,omitempty"`
	Tracking         string           `json:"tracking,omitempty"`
	ReturnPathDomain string           `json:"return_path_domain"`
	TrackingDomain   string           `json:"tracking_domain,omitempty"`
	DKIMSelector     string           `json:"dkim_selector"`
	DKIMAlgorithm    string           `json:"dkim_algorithm"`
	DMARC            *domains.DMARC   `json:"dmarc,omitempty"`
	Access           accessJSON       `json:"access"`
	Records          []domains.Record `json:"records"`
	CreatedAt        *time.Time       `json:"created_at"`
	VerifiedAt       *time.Time       `json:"verified_at"`
	LastCheckedAt    *time.Time       `json:"last_checked_at"`
	// DKIM lists the keys (active, next, retired) and whether the domain
	// can rotate; never a private key.
	DKIM *domains.DKIMInfo `json:"dkim,omitempty"`
}

// domainOut renders a domain; the private key is never part of it. dkim,
// when not nil, is the DKIM part already known (a registration's), else
// it is read.
func (s *Server) domainOut(ctx context.Context, d store.Domain, dkim *domains.DKIMInfo) (domainJSON, error) {
	out := domainJSON{
		Name: d.Name, Sandbox: d.Sandbox, Status: d.Status, ReturnPath: d.ReturnPath, Tracking: d.Tracking,
		DKIMSelector: d.DKIMSelector, DKIMAlgorithm: d.DKIMAlgorithm, Records: []domains.Record{},
		CreatedAt: d.CreatedAt.Ptr(), VerifiedAt: d.VerifiedAt.Ptr(), LastCheckedAt: d.LastCheckedAt.Ptr(),
		Access: accessJSON{Restricted: d.Restricted, Accounts: []string{}},
	}
	out.ReturnPathDomain = domains.EnvelopeDomain(d.Name, d.ReturnPath, d.Token, s.opts.Zone)
	if d.Tracking != "" {
		out.TrackingDomain = d.Tracking + "." + d.Name
	}
	if d.DMARCPolicy != "" {
		out.DMARC = &domains.DMARC{Policy: d.DMARCPolicy, RUA: d.DMARCRUA, Pct: d.DMARCPct}
	}
	if err := json.Unmarshal([]byte(d.Records), &out.Records); err != nil {
		return out, fmt.Errorf("domain %s: records: %w", d.Name, err)
	}
	switch {
	case dkim != nil:
		out.DKIM = dkim
	case s.opts.Domains != nil:
		info, err := s.opts.Domains.DKIM(ctx, d)
		if err != nil {
			return out, err
		}
		out.DKIM = &info
	}
	if d.Restricted {
		names, err := s.opts.Store.DomainGrants(ctx, d.ID)
		if err != nil {
			return out, err
		}
		out.Access.Accounts = names
	}
	return out, nil
}

// domainSubject is what domain errors are about.
func domainSubject(name string) subject {
	return subject{field: "domain", what: fmt.Sprintf("domain %q", name), conflictField: "name",
		conflict: "already exists in this organization or is verified by another one"}
}

func (s *Server) writeDomain(w http.ResponseWriter, r *http.Request, status int, d store.Domain) {
	s.writeDomainDKIM(w, r, status, d, nil)
}

// writeDomainDKIM is writeDomain with the DKIM part already known (nil:
// read it).
func (s *Server) writeDomainDKIM(w http.ResponseWriter, r *http.Request, status int, d store.Domain, dkim *domains.DKIMInfo) {
	out, err := s.domainOut(r.Context(), d, dkim)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, status, out)
}

func (s *Server) createDomain(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	var in domains.Input
	if !decode(w, r, &in) {
		return
	}
	d, dkim, err := s.opts.Domains.CreateWithDKIM(r.Context(), org, in)
	if err != nil {
		s.fail(w, r, domainSubject(in.Name), err)
		return
	}
	s.opts.Changed()
	s.writeDomainDKIM(w, r, http.StatusCreated, d, &dkim)
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	ds, err := s.opts.Store.ListDomains(r.Context(), org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []domainJSON{}
	for _, d := range ds {
		dj, err := s.domainOut(r.Context(), d, nil)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		out = append(out, dj)
	}
	writeJSON(w, http.StatusOK, map[string]any{"domains": out})
}

// domainName normalizes the {domain} path value the way input is
// normalized, so /domains/Bücher.example finds xn--bcher-kva.example.
func domainName(r *http.Request) string {
	raw := r.PathValue("domain")
	if n, err := domains.NormalizeDomain(raw); err == nil {
		return n
	}
	return raw
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	d, err := s.opts.Store.DomainByName(r.Context(), org.ID, name)
	if err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	s.writeDomain(w, r, http.StatusOK, d)
}

func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	if err := s.opts.Domains.Delete(r.Context(), org, name); err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	s.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) verifyDomain(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	d, err := s.opts.Domains.Verify(r.Context(), org, name)
	if err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	s.opts.Changed()
	s.writeDomain(w, r, http.StatusOK, d)
}

func (s *Server) setAccess(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	var in struct {
		Restricted *bool    `json:"restricted"`
		Accounts   []string `json:"accounts"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Restricted == nil {
		invalid(w, "restricted", "restricted is required (true or false)")
		return
	}
	d, err := s.opts.Domains.SetAccess(r.Context(), org, name, *in.Restricted, in.Accounts)
	if err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	s.opts.Changed()
	s.writeDomain(w, r, http.StatusOK, d)
}

type eventJSON struct {
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

func (s *Server) domainEvents(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	if _, err := s.opts.Store.DomainByName(r.Context(), org.ID, name); err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	evs, err := s.opts.Store.Events(r.Context(), org.ID, "domain:"+name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []eventJSON{}
	for _, e := range evs {
		out = append(out, eventJSON{Kind: e.Kind, Detail: e.Detail, At: e.At.Time})
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}
