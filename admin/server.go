// Package admin is sendergate's HTTP API (JSON over HTTP with bearer keys),
// its OpenAPI 3 document and the address confirmation page. It is an
// adapter: the domain workflow lives in package domains, the authorization
// decision in package policy, persistence in package store.
//
// When the database is unreachable every route that needs it answers 503
// with code "unavailable" and a Retry-After header, never 401: a key that
// cannot be looked up is not a wrong key.
//
// Two kinds of bearer key exist. The admin key (data_dir/admin.key) manages
// organizations and may act in any of them. An organization key acts in its
// own organization only; anything of another organization answers 404,
// exactly as if it did not exist.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/store"
)

// Options configure the API server.
type Options struct {
	Store    *store.Store
	AdminKey string // the admin bearer key (plain; only its hash is kept)
	// PublicURL is admin.public_url, where users reach this server: the
	// confirmation page's form is accepted only from its origin. Empty
	// means the origin of each request's own Host.
	PublicURL   string
	Zone        string // dns.zone
	SandboxZone string // sandbox.zone
	Logger      *slog.Logger
	Now         func() time.Time
	// Metrics serves /metrics; nil leaves the route out.
	Metrics http.Handler
	// Ready reports whether the daemon can serve mail (policy snapshot
	// loaded); /healthz reports "policy": "not_loaded" and answers 503
	// while it returns an error.
	Ready func(ctx context.Context) error
	// Changed is called after every write that the policy snapshot or the
	// DNS zone depend on, so this process applies it at once (other
	// processes see it through the store's state version).
	Changed func()
	// Domains runs the domain workflow; nil leaves the domain routes out.
	Domains DomainService
	// Addresses runs address confirmation; nil leaves those routes out.
	Addresses AddressService
	// Limits reports usage against the sending limits (nil: read from
	// the store alone); LimitDefaults are the config's [limits].
	Limits        LimitService
	LimitDefaults limits.Defaults
	// WebhooksAllowPrivate is webhooks.allow_private: webhook URLs may
	// name loopback and private addresses.
	WebhooksAllowPrivate bool
	// SuppressionsChanged, when set, applies a suppression list write to
	// this instance's in-memory list before the answer.
	SuppressionsChanged func(context.Context) error
}

// Server is the admin HTTP API.
type Server struct {
	opts      Options
	adminHash [sha256.Size]byte
	origin    string // of Options.PublicURL; "" = each request's own
	mux       *http.ServeMux
	panel     *panel // the page at / and its assets
}

// New returns the API server; Handler serves it.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: no store")
	}
	if len(opts.AdminKey) < 16 {
		return nil, errors.New("admin: admin key missing or shorter than 16 characters")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Changed == nil {
		opts.Changed = func() {}
	}
	s := &Server{opts: opts, adminHash: sha256.Sum256([]byte(opts.AdminKey)), mux: http.NewServeMux()}
	if opts.PublicURL != "" {
		o, ok := webOrigin(opts.PublicURL)
		if !ok {
			return nil, fmt.Errorf("admin: public_url %q is not an http(s) URL with a host", opts.PublicURL)
		}
		s.origin = o
	}
	pn, err := newPanel(opts.Zone, opts.SandboxZone)
	if err != nil {
		return nil, err
	}
	s.panel = pn
	s.routes()
	return s, nil
}

// Handler returns the HTTP handler, with request logging.
func (s *Server) Handler() http.Handler { return s.logRequests(s.mux) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /v1/openapi.json", serveOpenAPI)
	if s.opts.Metrics != nil {
		m.Handle("GET /metrics", s.opts.Metrics)
	}
	m.HandleFunc("POST /v1/orgs", s.auth(s.createOrg))
	m.HandleFunc("GET /v1/orgs", s.auth(s.listOrgs))
	m.HandleFunc("GET /v1/orgs/{org}", s.inOrg(s.getOrg))
	m.HandleFunc("DELETE /v1/orgs/{org}", s.inOrg(s.deleteOrg))
	m.HandleFunc("POST /v1/orgs/{org}/keys", s.inOrg(s.createKey))
	m.HandleFunc("DELETE /v1/orgs/{org}/keys/{id}", s.inOrg(s.deleteKey))
	m.HandleFunc("POST /v1/orgs/{org}/smtp-accounts", s.inOrg(s.createAccount))
	m.HandleFunc("GET /v1/orgs/{org}/smtp-accounts", s.inOrg(s.listAccounts))
	m.HandleFunc("POST /v1/orgs/{org}/smtp-accounts/{name}/password", s.inOrg(s.rotatePassword))
	m.HandleFunc("DELETE /v1/orgs/{org}/smtp-accounts/{name}", s.inOrg(s.deleteAccount))
	if s.opts.Domains != nil {
		s.domainRoutes(m)
		s.dkimRoutes(m)
		m.HandleFunc("GET /v1/orgs/{org}/domains/{domain}/zonefile", s.inOrg(s.domainZonefile))
	}
	if s.opts.Addresses != nil {
		s.addressRoutes(m)
	}
	s.limitRoutes(m)
	s.webhookRoutes(m)
	s.suppressionRoutes(m)
	s.panelRoutes(m)
	m.HandleFunc("/", s.notFound)
}

// notFound answers a request that no route serves.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "", "no such route: "+r.Method+" "+r.URL.Path)
}

// principal is who a request acts as.
type principal struct {
	admin bool
	orgID string // for an organization key
}

type handler func(w http.ResponseWriter, r *http.Request, p principal)
type orgHandler func(w http.ResponseWriter, r *http.Request, p principal, org store.Org)

// auth checks the bearer key and passes the principal on. Only a key that
// is really wrong answers 401; a key that could not be looked up answers
// 503 (database unreachable) or 500.
func (s *Server) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if errors.Is(err, errBadKey) {
			unauthorized(w)
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		h(w, r, p)
	}
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sendergate"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "Authorization", "missing or invalid bearer key")
}

// inOrg authenticates and resolves {org}; an organization key gets 404 for
// any organization but its own. For an organization key both come from
// one query (the key is still checked at every request: a revoked key
// stops working at once).
func (s *Server) inOrg(h orgHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("org")
		p, org, err := s.authenticateIn(r, name)
		switch {
		case errors.Is(err, errBadKey):
			unauthorized(w)
		case errors.Is(err, store.ErrNotFound) || (err == nil && !p.admin && org.ID != p.orgID):
			writeError(w, http.StatusNotFound, "not_found", "org", fmt.Sprintf("organization %q not found", name))
		case err != nil:
			s.internal(w, r, err)
		default:
			h(w, r, p, org)
		}
	}
}

const orgKeyPrefix = "sgk_"

// errBadKey means the request carries no valid bearer key (401).
var errBadKey = errors.New("missing or invalid bearer key")

// authenticate returns the principal of the request's bearer key,
// errBadKey, or the store's error when an organization key could not be
// looked up.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	admin, id, sum, err := s.bearer(r)
	if err != nil || admin {
		return principal{admin: admin}, err
	}
	k, err := s.opts.Store.APIKeyByID(r.Context(), id)
	return checkKey(k, sum, err)
}

// authenticateIn is authenticate for a request in the organization called
// orgName, which it also returns (store.ErrNotFound when there is none).
// An organization key and the organization are read in one query.
func (s *Server) authenticateIn(r *http.Request, orgName string) (principal, store.Org, error) {
	admin, id, sum, err := s.bearer(r)
	if err != nil {
		return principal{}, store.Org{}, err
	}
	if admin {
		org, err := s.opts.Store.OrgByName(r.Context(), orgName)
		return principal{admin: true}, org, err
	}
	k, org, found, err := s.opts.Store.APIKeyInOrg(r.Context(), id, orgName)
	p, err := checkKey(k, sum, err)
	if err == nil && !found {
		err = fmt.Errorf("admin: organization %q: %w", orgName, store.ErrNotFound)
	}
	return p, org, err
}

// bearer reads the request's bearer key: the admin key, or an
// organization key's id and the key's SHA-256; errBadKey when it is
// neither.
func (s *Server) bearer(r *http.Request) (admin bool, id string, sum [sha256.Size]byte, err error) {
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return false, "", sum, errBadKey
	}
	key = strings.TrimSpace(key)
	sum = sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) == 1 {
		return true, "", sum, nil
	}
	rest, ok := strings.CutPrefix(key, orgKeyPrefix)
	if !ok {
		return false, "", sum, errBadKey
	}
	id, _, ok = strings.Cut(rest, ".")
	if !ok {
		return false, "", sum, errBadKey
	}
	return false, id, sum, nil
}

// checkKey compares the key looked up (k, or the lookup's error) with the
// SHA-256 of the key the request presented.
func checkKey(k store.APIKey, sum [sha256.Size]byte, err error) (principal, error) {
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, errBadKey
	}
	if err != nil {
		return principal{}, fmt.Errorf("admin: look up api key: %w", err)
	}
	want, err := hex.DecodeString(k.Hash)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return principal{}, errBadKey
	}
	return principal{orgID: k.OrgID}, nil
}

// hashSecret returns the stored form of a generated secret (hex SHA-256;
// secrets carry >= 128 bits of entropy, so no slow KDF is needed).
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns n random bytes from crypto/rand as lowercase base32.
func NewSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("admin: crypto/rand failed: " + err.Error())
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// health is the body of /healthz.
type health struct {
	// Status is ok (200), or, with 503: degraded (database down, mail
	// decided from the last policy snapshot), starting (no snapshot yet:
	// mail is refused with 451) or unavailable (both).
	Status   string `json:"status"`
	Database string `json:"database"` // up | down
	Policy   string `json:"policy"`   // loaded | not_loaded
	Error    string `json:"error,omitempty"`
}

// healthz reports the database and the policy snapshot separately: with
// the database down the API cannot work, but SMTP goes on deciding from
// the snapshot it has.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := health{Database: "up", Policy: "loaded"}
	var why []string
	if err := s.opts.Store.Ping(ctx); err != nil {
		h.Database = "down"
		why = append(why, "database unreachable")
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(ctx); err != nil {
			h.Policy = "not_loaded"
			why = append(why, "policy snapshot not loaded: "+err.Error())
		}
	}
	switch {
	case h.Database == "up" && h.Policy == "loaded":
		h.Status = "ok"
	case h.Policy == "loaded":
		h.Status = "degraded"
	case h.Database == "up":
		h.Status = "starting"
	default:
		h.Status = "unavailable"
	}
	h.Error = strings.Join(why, "; ")
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

// subject names what a request was about, for error answers: the field
// that names it (in the path, or in the body for a conflict on create), a
// noun phrase for sentences, and what a conflict means.
type subject struct {
	field, what   string
	conflictField string // default: field
	conflict      string // default: "already exists"
}

// retryLater is an error that knows when trying again can succeed (a rate
// limit): answered 429 with Retry-After.
type retryLater interface {
	error
	RetryAfter() time.Duration
}

// fail answers the error of a workflow call: a validation error (400
// naming the field), a state refusal (422; 429 with Retry-After when rate
// limited), a mail hand-off failure (503), not found (404), a conflict
// (409); anything else goes to internal (503 when the database is
// unreachable, else 500).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sub subject, err error) {
	var (
		fe *domains.FieldError
		se *domains.StateError
		de *addresses.DeliveryError
		rl retryLater
	)
	switch {
	case errors.As(err, &rl):
		setRetryAfter(w, rl.RetryAfter())
		writeError(w, http.StatusTooManyRequests, "rate_limited", "", rl.Error())
	case errors.As(err, &fe):
		invalid(w, fe.Field, fe.Message)
	case errors.As(err, &de):
		s.opts.Logger.Warn("confirmation email failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "delivery_failed", "", de.Error())
	case errors.As(err, &se):
		status := http.StatusUnprocessableEntity
		if se.Code == "rate_limited" {
			status = http.StatusTooManyRequests
		}
		writeError(w, status, se.Code, "", se.Message)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", sub.field, sub.what+" not found")
	case errors.Is(err, store.ErrConflict):
		msg, field := sub.what+" already exists", sub.field
		if sub.conflict != "" {
			msg = sub.what + " " + sub.conflict
		}
		if sub.conflictField != "" {
			field = sub.conflictField
		}
		writeError(w, http.StatusConflict, "conflict", field, msg)
	default:
		s.internal(w, r, err)
	}
}

// apiError is the body of every error response.
type apiError struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Field: field, Message: msg}})
}

func invalid(w http.ResponseWriter, field, msg string) {
	writeError(w, http.StatusBadRequest, "invalid", field, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// unavailableRetry is the Retry-After of answers given while the database
// is unreachable.
const unavailableRetry = 5 * time.Second

// unavailableMessage tells the caller what a 503 "unavailable" means.
const unavailableMessage = "the database is unreachable right now; this is not a problem with your key or your request: retry after Retry-After seconds"

// setRetryAfter sets Retry-After to d in whole seconds, rounded up, at least 1.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	secs := max(int64((d+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

// internal answers an error no handler expected: 503 "unavailable" with
// Retry-After when the database is unreachable (store.IsUnavailable),
// else 500. Either is logged once, without internal detail in the answer.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	if store.IsUnavailable(err) {
		s.opts.Logger.Warn("admin request: database unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		setRetryAfter(w, unavailableRetry)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", unavailableMessage)
		return
	}
	s.opts.Logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "", "internal error; see the server log")
}

const maxBody = 1 << 20

// decode reads a JSON object into v strictly: unknown fields, trailing data
// and wrong types are 400s naming the problem. It reports whether to go on.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var (
		typeErr  *json.UnmarshalTypeError
		maxErr   *http.MaxBytesError
		fieldErr *domains.FieldError
	)
	switch {
	case errors.As(err, &fieldErr):
		invalid(w, fieldErr.Field, fieldErr.Message)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		writeError(w, http.StatusBadRequest, "invalid_json", "", "request body must be a JSON object")
	case errors.As(err, &typeErr):
		invalid(w, typeErr.Field, fmt.Sprintf("%s must be %s", typeErr.Field, jsonType(typeErr.Type)))
	case errors.As(err, &maxErr):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "", "request body larger than 1 MiB")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		invalid(w, field, fmt.Sprintf("unknown field %q", field))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid_json", "", "request body is empty; send a JSON object")
	default:
		writeError(w, http.StatusBadRequest, "invalid_json", "", "request body is not a valid JSON object: "+err.Error())
	}
	return false
}

// jsonType names t as JSON does, for error messages.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// logRequests logs one line per request: never the Authorization header or
// a body, so keys and passwords stay out of the logs.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			return
		}
		s.opts.Logger.Info("http", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"remote", r.RemoteAddr, "dur", time.Since(start).Round(time.Microsecond))
	})
}
