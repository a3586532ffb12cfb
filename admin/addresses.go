package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/store"
)

// AddressService runs mailbox confirmation for the API (package addresses).
type AddressService interface {
	Add(ctx context.Context, org store.Org, email string) (store.Address, error)
	Resend(ctx context.Context, org store.Org, email string) (store.Address, error)
	Delete(ctx context.Context, org store.Org, email string) error
	Confirm(ctx context.Context, token string) (store.Address, error)
	// Check reports what Confirm would do, changing nothing.
	Check(ctx context.Context, token string) (store.Address, error)
}

func (s *Server) addressRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/orgs/{org}/addresses", s.inOrg(s.addAddress))
	m.HandleFunc("GET /v1/orgs/{org}/addresses", s.inOrg(s.listAddresses))
	m.HandleFunc("POST /v1/orgs/{org}/addresses/{email}/resend", s.inOrg(s.resendAddress))
	m.HandleFunc("DELETE /v1/orgs/{org}/addresses/{email}", s.inOrg(s.deleteAddress))
	m.HandleFunc("POST /v1/confirm", s.confirmJSON)
	m.HandleFunc("GET /confirm", s.confirmPage) // and HEAD: both only show the page
	m.HandleFunc("POST /confirm", s.confirmForm)
}

type addressJSON struct {
	Email       string     `json:"email"`
	Status      string     `json:"status"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func addressOut(a store.Address, now time.Time) addressJSON {
	out := addressJSON{Email: a.Email, Status: a.Status, CreatedAt: a.CreatedAt.Ptr(), ConfirmedAt: a.ConfirmedAt.Ptr()}
	if a.Status == addresses.Pending {
		out.ExpiresAt = a.TokenExpiresAt.Ptr()
		if !a.TokenExpiresAt.IsZero() && now.After(a.TokenExpiresAt.Time) {
			out.Status = addresses.Expired
		}
	}
	return out
}

// addressSubject is what address errors are about.
func addressSubject(email string) subject {
	return subject{field: "email", what: fmt.Sprintf("address %q", email)}
}

func (s *Server) addAddress(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	var in struct {
		Email string `json:"email"`
	}
	if !decode(w, r, &in) {
		return
	}
	a, err := s.opts.Addresses.Add(r.Context(), org, in.Email)
	if err != nil {
		s.fail(w, r, addressSubject(in.Email), err)
		return
	}
	writeJSON(w, http.StatusAccepted, addressOut(a, s.opts.Now()))
}

func (s *Server) listAddresses(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	as, err := s.opts.Store.ListAddresses(r.Context(), org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	now := s.opts.Now()
	out := []addressJSON{}
	for _, a := range as {
		aj := addressOut(a, now)
		if status == "" || aj.Status == status {
			out = append(out, aj)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"addresses": out})
}

func (s *Server) resendAddress(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	email := r.PathValue("email")
	a, err := s.opts.Addresses.Resend(r.Context(), org, email)
	if err != nil {
		s.fail(w, r, addressSubject(email), err)
		return
	}
	writeJSON(w, http.StatusAccepted, addressOut(a, s.opts.Now()))
}

func (s *Server) deleteAddress(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	email := r.PathValue("email")
	if err := s.opts.Addresses.Delete(r.Context(), org, email); err != nil {
		s.fail(w, r, addressSubject(email), err)
		return
	}
	s.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) confirmJSON(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Token == "" {
		invalid(w, "token", "token is required")
		return
	}
	a, err := s.opts.Addresses.Confirm(r.Context(), in.Token)
	switch {
	case err == nil:
		s.opts.Changed()
		writeJSON(w, http.StatusOK, map[string]string{"email": a.Email, "status": addresses.Confirmed})
	case errors.Is(err, addresses.ErrExpired):
		writeError(w, http.StatusGone, "expired", "token", "this confirmation link has expired; ask for a new one")
	case errors.Is(err, addresses.ErrUsed):
		writeError(w, http.StatusConflict, "already_used", "token", "this confirmation link was already used")
	case errors.Is(err, addresses.ErrUnknown):
		writeError(w, http.StatusNotFound, "not_found", "token", "unknown confirmation token")
	default:
		s.internal(w, r, err)
	}
}
