package admin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/webhooks"
)

// webhookRoutes registers the webhook routes.
func (s *Server) webhookRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/orgs/{org}/webhooks", s.inOrg(s.createWebhook))
	m.HandleFunc("GET /v1/orgs/{org}/webhooks", s.inOrg(s.listWebhooks))
	m.HandleFunc("DELETE /v1/orgs/{org}/webhooks/{id}", s.inOrg(s.deleteWebhook))
	m.HandleFunc("GET /v1/orgs/{org}/webhooks/{id}/deliveries", s.inOrg(s.webhookDeliveries))
}

type webhookOut struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func webhookJSON(w store.Webhook) webhookOut {
	return webhookOut{ID: w.ID, URL: w.URL, Events: w.EventList(), CreatedAt: w.CreatedAt.Time}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	var in struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if !decode(w, r, &in) {
		return
	}
	if err := webhooks.CheckURL(in.URL, s.opts.WebhooksAllowPrivate); errors.Is(err, webhooks.ErrForbiddenTarget) {
		writeError(w, http.StatusBadRequest, "forbidden_target", "url", "url points to a loopback, private or link-local address (webhooks.allow_private is off)")
		return
	} else if err != nil {
		invalid(w, "url", "url must be an http or https URL with a host (https recommended)")
		return
	}
	if len(in.Events) == 0 {
		invalid(w, "events", "events must list at least one event")
		return
	}
	for _, e := range in.Events {
		if !store.IsWebhookEvent(e) {
			invalid(w, "events", "unknown event "+e)
			return
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		s.internal(w, r, err)
		return
	}
	evs, _ := json.Marshal(in.Events)
	wh := store.Webhook{ID: store.NewID(), OrgID: org.ID, URL: in.URL, Events: string(evs), Secret: "whsec_" + hex.EncodeToString(b[:]), CreatedAt: store.At(s.opts.Now())}
	if err := s.opts.Store.CreateWebhook(r.Context(), wh); err != nil {
		s.internal(w, r, err)
		return
	}
	out := webhookJSON(wh)
	out.Secret = wh.Secret
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	ws, err := s.opts.Store.Webhooks(r.Context(), org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []webhookOut{}
	for _, wh := range ws {
		out = append(out, webhookJSON(wh))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	err := s.opts.Store.DeleteWebhook(r.Context(), org.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "id", "webhook not found")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	wh, err := s.opts.Store.Webhook(r.Context(), org.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "id", "webhook not found")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	ds, err := s.opts.Store.Deliveries(r.Context(), wh.ID, 100)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	type deliveryOut struct {
		ID             string     `json:"id"`
		Event          string     `json:"event"`
		Status         string     `json:"status"`
		Attempts       int        `json:"attempts"`
		LastStatusCode int        `json:"last_status_code"`
		LastError      string     `json:"last_error"`
		CreatedAt      time.Time  `json:"created_at"`
		NextAttemptAt  *time.Time `json:"next_attempt_at"`
		DeliveredAt    *time.Time `json:"delivered_at"`
	}
	out := []deliveryOut{}
	for _, d := range ds {
		o := deliveryOut{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts, LastStatusCode: d.LastStatusCode,
			LastError: d.LastError, CreatedAt: d.CreatedAt.Time, DeliveredAt: d.DeliveredAt.Ptr()}
		if d.Status == store.DeliveryPending {
			o.NextAttemptAt = d.NextAttemptAt.Ptr()
		}
		out = append(out, o)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
}
