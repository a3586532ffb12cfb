package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/store"
)

// LimitService reports usage against the sending limits (package
// limits); *limits.Limiter implements it.
type LimitService interface {
	Usage(ctx context.Context, orgID string, scopes []limits.Scope) ([]limits.Usage, error)
}

var _ LimitService = (*limits.Limiter)(nil)

// limitRoutes registers the limits and usage routes. Without a
// LimitService, usage reads the shared counters through a limiter of its
// own (counts settled by every instance).
func (s *Server) limitRoutes(m *http.ServeMux) {
	if s.opts.Limits == nil {
		s.opts.Limits = limits.New(s.opts.Store, limits.Options{Now: s.opts.Now})
	}
	m.HandleFunc("GET /v1/orgs/{org}/limits", s.inOrg(s.getOrgLimits))
	m.HandleFunc("PUT /v1/orgs/{org}/limits", s.inOrg(s.putOrgLimits))
	m.HandleFunc("GET /v1/orgs/{org}/smtp-accounts/{name}/limits", s.inOrg(s.getAccountLimits))
	m.HandleFunc("PUT /v1/orgs/{org}/smtp-accounts/{name}/limits", s.inOrg(s.putAccountLimits))
	m.HandleFunc("GET /v1/orgs/{org}/usage", s.inOrg(s.usage))
}

// limitsIn is the body of both PUTs: recipients per window, 0 or absent
// meaning none.
type limitsIn struct {
	PerMinute int64 `json:"per_minute"`
	PerHour   int64 `json:"per_hour"`
	PerDay    int64 `json:"per_day"`
}

func (in limitsIn) values() limits.Values { return limits.Values{in.PerMinute, in.PerHour, in.PerDay} }

// limitsOut is a scope's limits as they apply: Source says whether they
// were set over the API or are the config's defaults.
type limitsOut struct {
	PerMinute int64  `json:"per_minute"`
	PerHour   int64  `json:"per_hour"`
	PerDay    int64  `json:"per_day"`
	Source    string `json:"source"` // "set" | "default"
	// For an account: the organization's limits, which apply to it too,
	// and, while the new-account day limit applies, when it ends.
	Organization    *limitsOut `json:"organization,omitempty"`
	NewAccountUntil *time.Time `json:"new_account_until,omitempty"`
}

func limitsJSON(v limits.Values, set bool) limitsOut {
	out := limitsOut{PerMinute: v[limits.Minute], PerHour: v[limits.Hour], PerDay: v[limits.Day], Source: "default"}
	if set {
		out.Source = "set"
	}
	return out
}

var fieldOf = [...]string{limits.Minute: "per_minute", limits.Hour: "per_hour", limits.Day: "per_day"}

// checkLimits answers 400 naming the first field out of range.
func checkLimits(w http.ResponseWriter, v limits.Values) bool {
	for win, n := range v {
		if n < 0 || n > limits.MaxLimit {
			invalid(w, fieldOf[win], fmt.Sprintf("%s must be 0 (no limit) or a number of recipients up to %d", fieldOf[win], int64(limits.MaxLimit)))
			return false
		}
	}
	return true
}

// stored returns the limits stored for an organization (accountID "") or
// account, nil when none.
func (s *Server) stored(ctx context.Context, orgID, accountID string) (*limits.Values, error) {
	row, err := s.opts.Store.Limits(ctx, orgID, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &limits.Values{row.PerMinute, row.PerHour, row.PerDay}, nil
}

// orgLimits returns the organization's limits as they apply, and whether
// they were set.
func (s *Server) orgLimits(ctx context.Context, org store.Org) (limits.Values, bool, error) {
	st, err := s.stored(ctx, org.ID, "")
	if err != nil {
		return limits.Values{}, false, err
	}
	v, _ := s.opts.LimitDefaults.Resolve(st, nil, time.Time{}, s.opts.Now())
	return v, st != nil, nil
}

func (s *Server) getOrgLimits(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	v, set, err := s.orgLimits(r.Context(), org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, limitsJSON(v, set))
}

// putOrgLimits sets an organization's limits: the admin key only, so that
// an organization cannot raise its own.
func (s *Server) putOrgLimits(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	if !p.admin {
		writeError(w, http.StatusForbidden, "forbidden", "Authorization",
			"setting an organization's sending limits needs the admin key: an organization cannot raise its own")
		return
	}
	var in limitsIn
	if !decode(w, r, &in) || !checkLimits(w, in.values()) {
		return
	}
	now := store.At(s.opts.Now())
	row := store.LimitRow{OrgID: org.ID, PerMinute: in.PerMinute, PerHour: in.PerHour, PerDay: in.PerDay, UpdatedAt: now}
	ev := store.Event{OrgID: org.ID, Subject: "limits", Kind: "limits.changed", At: now,
		Detail: fmt.Sprintf("organization %s: %s", org.Name, describe(in.values()))}
	if err := s.opts.Store.SetLimits(r.Context(), row, ev); err != nil {
		s.internal(w, r, err)
		return
	}
	s.opts.Changed()
	writeJSON(w, http.StatusOK, limitsJSON(in.values(), true))
}

// account resolves {name} of org, answering 404 when there is none.
func (s *Server) account(w http.ResponseWriter, r *http.Request, org store.Org) (store.Account, bool) {
	name := r.PathValue("name")
	a, err := s.opts.Store.AccountByName(r.Context(), org.ID, name)
	if err != nil {
		s.fail(w, r, accountSubject(name), err)
		return store.Account{}, false
	}
	return a, true
}

func (s *Server) getAccountLimits(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	a, ok := s.account(w, r, org)
	if !ok {
		return
	}
	orgV, orgSet, err := s.orgLimits(r.Context(), org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	st, err := s.stored(r.Context(), org.ID, a.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountLimitsOut(a, st, orgV, orgSet))
}

func (s *Server) accountLimitsOut(a store.Account, st *limits.Values, orgV limits.Values, orgSet bool) limitsOut {
	d := s.opts.LimitDefaults
	now := s.opts.Now()
	_, v := d.Resolve(nil, st, a.CreatedAt.Time, now)
	out := limitsJSON(v, st != nil)
	o := limitsJSON(orgV, orgSet)
	out.Organization = &o
	if until := a.CreatedAt.Add(d.NewAccountAge); d.NewAccountPerDay > 0 && now.Before(until) {
		out.NewAccountUntil = &until
	}
	return out
}

// putAccountLimits sets an account's limits, each at or below the
// organization's in its window (a limit above it would never apply: the
// organization's is checked too).
func (s *Server) putAccountLimits(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	a, ok := s.account(w, r, org)
	if !ok {
		return
	}
	var in limitsIn
	if !decode(w, r, &in) || !checkLimits(w, in.values()) {
		return
	}
	orgV, orgSet, err := s.orgLimits(r.Context(), org)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	v := in.values()
	for win, n := range v {
		if ceiling := orgV[win]; ceiling > 0 && n > ceiling {
			writeError(w, http.StatusUnprocessableEntity, "above_organization_limit", fieldOf[win],
				fmt.Sprintf("%s %d is above the organization's limit of %d recipients per %s; an account's limit must be at or below it",
					fieldOf[win], n, ceiling, limits.Window(win)))
			return
		}
	}
	now := store.At(s.opts.Now())
	row := store.LimitRow{OrgID: org.ID, AccountID: a.ID, PerMinute: in.PerMinute, PerHour: in.PerHour, PerDay: in.PerDay, UpdatedAt: now}
	ev := store.Event{OrgID: org.ID, Subject: "limits", Kind: "limits.changed", At: now,
		Detail: fmt.Sprintf("account %s: %s", a.Username, describe(v))}
	if err := s.opts.Store.SetLimits(r.Context(), row, ev); err != nil {
		s.fail(w, r, accountSubject(a.Name), err)
		return
	}
	s.opts.Changed()
	writeJSON(w, http.StatusOK, s.accountLimitsOut(a, &v, orgV, orgSet))
}

// describe words limits for an event: "5/minute, none/hour, 1000/day".
func describe(v limits.Values) string {
	out := ""
	for win, n := range v {
		if win > 0 {
			out += ", "
		}
		if n == 0 {
			out += "none/" + limits.Window(win).String()
		} else {
			out += fmt.Sprintf("%d/%s", n, limits.Window(win))
		}
	}
	return out
}

// usageWindow is one window of a scope in the usage report.
type usageWindow struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Count    int64     `json:"count"`
	Reserved int64     `json:"reserved"`
	Limit    int64     `json:"limit"` // 0: none
}

type usageScope struct {
	Scope        string                 `json:"scope"` // organization | account
	Name         string                 `json:"name"`
	Username     string                 `json:"username,omitempty"`
	Source       string                 `json:"source"` // limits: set | default
	Windows      map[string]usageWindow `json:"windows"`
	RefusedToday int64                  `json:"refused_today"`
}

type limitEvent struct {
	Kind   string     `json:"kind"`
	Detail string     `json:"detail"`
	At     *time.Time `json:"at"`
}

// usage reports, for the organization and each of its accounts, the
// current minute, hour and day: recipients counted, the limit, and the
// recipients refused today; with the latest limit events.
func (s *Server) usage(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	ctx := r.Context()
	accts, err := s.opts.Store.ListAccounts(ctx, org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	rows, err := s.opts.Store.OrgLimitRows(ctx, org.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	stored := map[string]*limits.Values{}
	for _, row := range rows {
		stored[row.AccountID] = &limits.Values{row.PerMinute, row.PerHour, row.PerDay}
	}
	now := s.opts.Now()
	d := s.opts.LimitDefaults
	orgV, _ := d.Resolve(stored[""], nil, time.Time{}, now)
	scopes := []limits.Scope{{Kind: limits.Organization, ID: org.ID, OrgID: org.ID, Name: org.Name, Limits: orgV}}
	sources := []string{source(stored[""] != nil)}
	for _, a := range accts {
		_, v := d.Resolve(nil, stored[a.ID], a.CreatedAt.Time, now)
		scopes = append(scopes, limits.Scope{Kind: limits.Account, ID: a.ID, OrgID: org.ID, Name: a.Username, Limits: v})
		sources = append(sources, source(stored[a.ID] != nil))
	}
	us, err := s.opts.Limits.Usage(ctx, org.ID, scopes)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := make([]usageScope, len(us))
	for i, u := range us {
		sc := usageScope{Scope: u.Scope.Kind.String(), Name: org.Name, Source: sources[i], Windows: map[string]usageWindow{},
			RefusedToday: u.RefusedToday}
		if u.Scope.Kind == limits.Account {
			sc.Name, sc.Username = accts[i-1].Name, accts[i-1].Username
		}
		for _, wu := range u.Windows {
			sc.Windows[wu.Window.String()] = usageWindow{Start: wu.Start, End: wu.End, Count: wu.Count, Reserved: wu.Reserved, Limit: wu.Limit}
		}
		out[i] = sc
	}
	evs, err := s.opts.Store.RecentEvents(ctx, org.ID, "limits", 20)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	events := make([]limitEvent, len(evs))
	for i, ev := range evs {
		events[i] = limitEvent{Kind: ev.Kind, Detail: ev.Detail, At: ev.At.Ptr()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"org": org.Name, "at": now.UTC(), "scopes": out, "events": events})
}

func source(set bool) string {
	if set {
		return "set"
	}
	return "default"
}
