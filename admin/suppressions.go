package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/suppress"
)

// Paging of GET /v1/orgs/{org}/suppressions.
const (
	defaultSuppressionPage = 100
	maxSuppressionPage     = 1000
)

// suppressionRoutes registers the suppression list routes.
func (s *Server) suppressionRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /v1/orgs/{org}/suppressions", s.inOrg(s.listSuppressions))
	m.HandleFunc("GET /v1/orgs/{org}/suppressions/{email}", s.inOrg(s.getSuppression))
	m.HandleFunc("PUT /v1/orgs/{org}/suppressions/{email}", s.inOrg(s.putSuppression))
	m.HandleFunc("DELETE /v1/orgs/{org}/suppressions/{email}", s.inOrg(s.deleteSuppression))
}

// suppressionJSON is one entry of a suppression list.
type suppressionJSON struct {
	Email      string     `json:"email"`
	Reason     string     `json:"reason"` // bounce, complaint, manual
	Status     string     `json:"status"` // enhanced status of the last bounce, e.g. "5.1.1"
	Diagnostic string     `json:"diagnostic"`
	MessageID  string     `json:"message_id"` // the message whose bounce or complaint suppressed it
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	Count      int64      `json:"count"`      // bounces or complaints seen
	ExpiresAt  *time.Time `json:"expires_at"` // null: never (manual entries, suppression.ttl = 0)
}

func suppressionOut(e store.Suppression) suppressionJSON {
	out := suppressionJSON{Email: e.Email, Reason: e.Reason, Status: e.Status, Diagnostic: e.Diagnostic, MessageID: e.MessageID,
		FirstSeen: e.FirstSeen.Time.UTC(), LastSeen: e.LastSeen.Time.UTC(), Count: e.Count}
	if !e.ExpiresAt.Time.IsZero() {
		t := e.ExpiresAt.Time.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// suppressionEmail reads and normalizes the {email} of the path; false
// after a 400 naming the field.
func suppressionEmail(w http.ResponseWriter, r *http.Request) (string, bool) {
	email, err := suppress.Normalize(r.PathValue("email"))
	if err != nil {
		invalid(w, "email", "email must be an address like user@example.com: "+err.Error())
		return "", false
	}
	return email, true
}

func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	q := r.URL.Query()
	reason := q.Get("reason")
	switch reason {
	case "", store.ReasonBounce, store.ReasonComplaint, store.ReasonManual:
	default:
		invalid(w, "reason", "reason must be bounce, complaint or manual")
		return
	}
	limit := defaultSuppressionPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSuppressionPage {
			invalid(w, "limit", "limit must be a number from 1 to "+strconv.Itoa(maxSuppressionPage))
			return
		}
		limit = n
	}
	es, err := s.opts.Store.ListSuppressions(r.Context(), org.ID, reason, q.Get("after"), limit)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := struct {
		Suppressions []suppressionJSON `json:"suppressions"`
		Next         string            `json:"next,omitempty"` // pass as ?after= for the next page
	}{Suppressions: []suppressionJSON{}}
	for _, e := range es {
		out.Suppressions = append(out.Suppressions, suppressionOut(e))
	}
	if len(es) == limit {
		out.Next = es[len(es)-1].Email
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSuppression(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	email, ok := suppressionEmail(w, r)
	if !ok {
		return
	}
	e, err := s.opts.Store.Suppression(r.Context(), org.ID, email)
	if errors.Is(err, store.ErrNotFound) {
		notSuppressed(w, email)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionOut(e))
}

// putSuppression adds a manual entry (201), or makes an existing one
// manual, so it never expires (200). The body, if any, must be {}.
func (s *Server) putSuppression(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	email, ok := suppressionEmail(w, r)
	if !ok {
		return
	}
	if r.ContentLength != 0 {
		var in struct{}
		if !decode(w, r, &in) {
			return
		}
	}
	e, created, err := s.opts.Store.PutSuppression(r.Context(), org.ID, email, s.opts.Now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.suppressionsChanged(r)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, suppressionOut(e))
}

func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	email, ok := suppressionEmail(w, r)
	if !ok {
		return
	}
	err := s.opts.Store.DeleteSuppression(r.Context(), org.ID, email)
	if errors.Is(err, store.ErrNotFound) {
		notSuppressed(w, email)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.suppressionsChanged(r)
	w.WriteHeader(http.StatusNoContent)
}

// notSuppressed answers 404 for an address the list does not hold.
func notSuppressed(w http.ResponseWriter, email string) {
	writeError(w, http.StatusNotFound, "not_found", "email", email+" is not on the suppression list")
}

// suppressionsChanged applies a write to this instance's suppression list
// before the answer (others follow within their sync interval).
func (s *Server) suppressionsChanged(r *http.Request) {
	if s.opts.SuppressionsChanged != nil {
		if err := s.opts.SuppressionsChanged(r.Context()); err != nil {
			s.opts.Logger.Warn("suppression list sync after a write failed; it applies at the next sync", "err", err)
		}
	}
}
