package admin

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
)

var (
	// Organization names become a DNS label of the sandbox domain, so they
	// are LDH: [a-z0-9-], 1-40, not starting or ending with '-'.
	orgNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)
	// Account names: [a-z0-9._-], 1-64, starting with a letter or digit
	// (so never "." or "..", which URL paths cannot carry).
	accountNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

type orgJSON struct {
	Name          string     `json:"name"`
	SandboxDomain string     `json:"sandbox_domain"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
}

func orgOut(o store.Org) orgJSON {
	return orgJSON{Name: o.Name, SandboxDomain: o.SandboxDomain, CreatedAt: o.CreatedAt.Ptr()}
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.admin {
		writeError(w, http.StatusForbidden, "forbidden", "Authorization", "creating organizations needs the admin key")
		return
	}
	var in struct {
		Name string `json:"name"`
	}
	if !decode(w, r, &in) {
		return
	}
	if !orgNameRE.MatchString(in.Name) {
		invalid(w, "name", "name must be 1-40 of [a-z0-9-], not starting or ending with '-'")
		return
	}
	now := store.At(s.opts.Now())
	org := store.Org{ID: store.NewID(), Name: in.Name, SandboxDomain: in.Name + "." + s.opts.SandboxZone, CreatedAt: now}
	sandbox, err := newSandboxDomain(org, now)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	err = s.opts.Store.CreateOrg(r.Context(), org, sandbox)
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "conflict", "name", fmt.Sprintf("organization %q already exists", in.Name))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.opts.Changed()
	writeJSON(w, http.StatusCreated, orgOut(org))
}

// newSandboxDomain makes the organization's pre-verified sandbox domain,
// with its own RSA-2048 DKIM key under selector sg1.
func newSandboxDomain(org store.Org, now store.Time) (store.Domain, error) {
	key, err := dkim.GenerateKey(dkim.RSA2048)
	if err != nil {
		return store.Domain{}, fmt.Errorf("sandbox key: %w", err)
	}
	pem, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		return store.Domain{}, fmt.Errorf("sandbox key: %w", err)
	}
	return store.Domain{
		ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: domains.NewToken(),
		Status: "verified", DKIMSelector: "sg1", DKIMAlgorithm: string(dkim.RSA2048), DKIMKey: pem,
		Records: "[]", CreatedAt: now, VerifiedAt: now,
	}, nil
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request, p principal) {
	orgs, err := s.opts.Store.ListOrgs(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []orgJSON{}
	for _, o := range orgs {
		if p.admin || o.ID == p.orgID { // an organization key sees only its own
			out = append(out, orgOut(o))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orgs": out})
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	writeJSON(w, http.StatusOK, orgOut(org))
}

func (s *Server) deleteOrg(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	if !p.admin {
		writeError(w, http.StatusForbidden, "forbidden", "Authorization", "deleting an organization needs the admin key")
		return
	}
	if err := s.opts.Store.DeleteOrg(r.Context(), org.ID); err != nil {
		s.internal(w, r, err)
		return
	}
	s.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	id := store.NewID()
	key := orgKeyPrefix + id + "." + NewSecret(20) // 160 bits
	k := store.APIKey{ID: id, OrgID: org.ID, Hash: hashSecret(key), CreatedAt: store.At(s.opts.Now())}
	if err := s.opts.Store.CreateAPIKey(r.Context(), k); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "key": key})
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	id := r.PathValue("id")
	if err := s.opts.Store.DeleteAPIKey(r.Context(), org.ID, id); err != nil {
		s.fail(w, r, subject{field: "id", what: fmt.Sprintf("key %q", id)}, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// accountSubject is what account errors are about.
func accountSubject(name string) subject {
	return subject{field: "name", what: fmt.Sprintf("account %q", name)}
}

type accountJSON struct {
	Name      string     `json:"name"`
	Username  string     `json:"username"`
	Password  string     `json:"password,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// newPassword returns a generated SMTP password: 160 bits, base32.
func newPassword() string { return NewSecret(20) }

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	var in struct {
		Name string `json:"name"`
	}
	if !decode(w, r, &in) {
		return
	}
	if !accountNameRE.MatchString(in.Name) {
		invalid(w, "name", "name must be 1-64 of [a-z0-9._-], starting with a letter or digit")
		return
	}
	pw := newPassword()
	now := store.At(s.opts.Now())
	a := store.Account{ID: store.NewID(), OrgID: org.ID, Name: in.Name, Username: in.Name + "@" + org.Name,
		PasswordHash: policy.HashPassword(pw), CreatedAt: now, UpdatedAt: now}
	if err := s.opts.Store.CreateAccount(r.Context(), a); err != nil {
		s.fail(w, r, accountSubject(in.Name), err)
		return
	}
	s.opts.Changed()
	writeJSON(w, http.StatusCreated, accountJSON{Name: a.Name, Username: a.Username, Password: pw})
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	accts, err := s.opts.Store.ListAccounts(r.Context(), org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []accountJSON{}
	for _, a := range accts {
		out = append(out, accountJSON{Name: a.Name, Username: a.Username, CreatedAt: a.CreatedAt.Ptr(), UpdatedAt: a.UpdatedAt.Ptr()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

func (s *Server) rotatePassword(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := r.PathValue("name")
	pw := newPassword()
	if err := s.opts.Store.SetAccountPassword(r.Context(), org.ID, name, policy.HashPassword(pw), store.At(s.opts.Now())); err != nil {
		s.fail(w, r, accountSubject(name), err)
		return
	}
	s.opts.Changed()
	writeJSON(w, http.StatusOK, accountJSON{Name: name, Username: name + "@" + org.Name, Password: pw})
}

func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := r.PathValue("name")
	if err := s.opts.Store.DeleteAccount(r.Context(), org.ID, name); err != nil {
		s.fail(w, r, accountSubject(name), err)
		return
	}
	s.opts.Changed()
	w.WriteHeader(http.StatusNoContent)
}
