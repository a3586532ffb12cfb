package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
)

// dkimRoutes are the DKIM key routes of a domain (issue 13): a rotation
// to the next key after a DNS check, and a key the customer brings.
func (s *Server) dkimRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/orgs/{org}/domains/{domain}/dkim/rotate", s.inOrg(s.rotateDKIM))
	m.HandleFunc("PUT /v1/orgs/{org}/domains/{domain}/dkim/byok", s.inOrg(s.setBYOK))
}

// checkFailedJSON is the 422 of a DKIM step whose DNS check failed: the
// error and each record checked, with what was expected, what was found
// and what to do.
type checkFailedJSON struct {
	Error   apiError         `json:"error"`
	Records []domains.Record `json:"records"`
}

// failDKIM answers a DKIM step's error: a failed DNS check is 422 with
// the records, a concurrent change of the keys 409, the rest as every
// domain route answers them.
func (s *Server) failDKIM(w http.ResponseWriter, r *http.Request, name string, err error) {
	var ce *domains.CheckError
	if errors.As(err, &ce) {
		writeJSON(w, http.StatusUnprocessableEntity, checkFailedJSON{
			Error: apiError{Code: "dkim_check_failed", Message: ce.Message}, Records: ce.Records})
		return
	}
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "conflict", "", fmt.Sprintf("the DKIM keys of domain %q changed at the same moment (another request or instance); read the domain and try again", name))
		return
	}
	s.fail(w, r, domainSubject(name), err)
}

func (s *Server) rotateDKIM(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	var in struct {
		Algorithm string `json:"algorithm"`
	}
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	d, err := s.opts.Domains.Rotate(r.Context(), org, name, in.Algorithm)
	if err != nil {
		s.failDKIM(w, r, name, err)
		return
	}
	s.opts.Changed()
	s.writeDomain(w, r, http.StatusOK, d)
}

func (s *Server) setBYOK(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	var in struct {
		Selector   string `json:"selector"`
		PrivateKey string `json:"private_key"`
	}
	if !decode(w, r, &in) {
		return
	}
	d, err := s.opts.Domains.SetBYOK(r.Context(), org, name, in.Selector, in.PrivateKey)
	if err != nil {
		s.failDKIM(w, r, name, err)
		return
	}
	s.opts.Changed()
	s.writeDomain(w, r, http.StatusOK, d)
}
