package domains

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

// StateError is a refusal because of the state of things (HTTP 422), such
// as verifying a domain another organization has verified meanwhile.
type StateError struct{ Code, Message string }

func (e *StateError) Error() string { return e.Message }

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Zone         string        // dns.zone
	Resolver     Resolver      // for verification
	Interval     time.Duration // dns.verify_interval
	Grace        time.Duration // dns.grace
	CheckTimeout time.Duration // deadline of one domain's check; default 10s
	// CheckQPS is dns.check_qps: the ceiling on background verification
	// queries per second of this Service; 0 is none. Manual verifies are
	// not limited.
	CheckQPS int
	// Served, when its Zone is set, is what the provider zone publishes:
	// each check then follows the CNAME to its target and compares what
	// the target serves with it (a broken delegation is a mismatch, a
	// flattened record that serves the right data is ok with a note).
	// Empty: checks stop at the CNAME.
	Served ZoneOptions
	// RetireAfter is dkim.retire_after: how long a key stays published
	// after a rotation retired it; default 168h.
	RetireAfter time.Duration
	// RotateInterval is dkim.rotate_interval, shown as the time of the
	// next automatic rotation; 0 is none.
	RotateInterval time.Duration
	// PublishWait bounds how long a rotation that has just published a
	// next key waits for the provider zone to serve it before its check
	// counts as failed; default 10s.
	PublishWait time.Duration
	// Registerer takes the background checker's metrics; nil is none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Service is the domain workflow on top of the store: registration with
// its key and records, manual and background verification, access grants.
type Service struct {
	st   *store.Store
	opts ServiceOptions
	chk  *checker
}

// NewService returns the workflow.
func NewService(st *store.Store, opts ServiceOptions) *Service {
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetireAfter <= 0 {
		opts.RetireAfter = 168 * time.Hour
	}
	if opts.PublishWait <= 0 {
		opts.PublishWait = 10 * time.Second
	}
	return &Service{st: st, opts: opts, chk: newChecker(opts)}
}

func subject(name string) string { return "domain:" + name }

// Create validates in, generates the DKIM key pair, the token and the
// records, and stores the domain as pending.
func (s *Service) Create(ctx context.Context, org store.Org, in Input) (store.Domain, error) {
	d, _, err := s.CreateWithDKIM(ctx, org, in)
	return d, err
}

// CreateWithDKIM is Create that also returns the DKIM part of the new
// domain's output (what DKIM would read back): the keys it stored are
// known, so answering the registration needs no further query.
func (s *Service) CreateWithDKIM(ctx context.Context, org store.Org, in Input) (store.Domain, DKIMInfo, error) {
	in, err := Normalize(in, s.opts.Zone)
	if err != nil {
		return store.Domain{}, DKIMInfo{}, err
	}
	// A name verified by another organization is refused by the store's
	// INSERT (ErrConflict), as a name already in this one.
	key, err := dkim.GenerateKey(dkim.Algorithm(in.DKIMAlgorithm))
	if err != nil {
		return store.Domain{}, DKIMInfo{}, fmt.Errorf("domains: key for %s: %w", in.Name, err)
	}
	pem, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		return store.Domain{}, DKIMInfo{}, fmt.Errorf("domains: key for %s: %w", in.Name, err)
	}
	token := NewToken()
	recs, err := json.Marshal(Records(in, token, s.opts.Zone))
	if err != nil {
		return store.Domain{}, DKIMInfo{}, err
	}
	// The second selector holds the next key from the start, published
	// before it ever signs.
	next, err := newKey(in.DKIMAlgorithm, SecondSelector(in.DKIMSelector), s.opts.Now())
	if err != nil {
		return store.Domain{}, DKIMInfo{}, err
	}
	now := store.At(s.opts.Now())
	d := store.Domain{
		ID: store.NewID(), OrgID: org.ID, Name: in.Name, Token: token, Status: string(Pending),
		ReturnPath: in.ReturnPath, Tracking: in.Tracking, DKIMSelector: in.DKIMSelector, DKIMAlgorithm: in.DKIMAlgorithm,
		DKIMKey: pem, Records: string(recs), CreatedAt: now,
	}
	if in.DMARC != nil {
		d.DMARCPolicy, d.DMARCRUA, d.DMARCPct = in.DMARC.Policy, in.DMARC.RUA, in.DMARC.Pct
	}
	d.NextCheckAt = planCheck(d, s.opts.Interval, s.opts.Grace)
	ev := store.Event{OrgID: org.ID, Subject: subject(d.Name), Kind: "domain.added", Detail: "status pending", At: now}
	if err := s.st.CreateDomainWithNext(ctx, d, next, ev, s.keyEvent(d, "dkim.next_published", nextDetail(next), s.opts.Now())); err != nil {
		return store.Domain{}, DKIMInfo{}, err
	}
	// The keys as the store holds them now (CreateDomainWithNext).
	active := store.DKIMKey{DomainID: d.ID, Selector: d.DKIMSelector, Algorithm: d.DKIMAlgorithm, State: store.KeyActive,
		CreatedAt: d.CreatedAt, ActivatedAt: d.CreatedAt}
	next.DomainID, next.State, next.PrivateKey = d.ID, store.KeyNext, ""
	return d, KeyStatus(d, []store.DKIMKey{active, next}, s.opts.Zone, s.opts.RotateInterval), nil
}

// Verify checks the domain's records now (POST .../verify) and applies the
// lifecycle. It returns the updated domain.
func (s *Service) Verify(ctx context.Context, org store.Org, name string) (store.Domain, error) {
	d, err := s.st.DomainByName(ctx, org.ID, name)
	if err != nil {
		return store.Domain{}, err
	}
	if d.Sandbox {
		return d, nil // verified from the start, nothing to check
	}
	d, _, err = s.check(ctx, d, s.opts.Resolver, true)
	return d, err
}

// check runs one verification of d through r, saves the outcome and plans
// the next background check. A check cut short by the end of ctx saves
// nothing.
func (s *Service) check(ctx context.Context, d store.Domain, r Resolver, manual bool) (store.Domain, Outcome, error) {
	var recs []Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		return d, Transient, fmt.Errorf("domains: records of %s: %w", d.Name, err)
	}
	if s.opts.Served.Zone != "" {
		// What the zone serves for this domain, built as the zone builds
		// it: the active key and the next and retired ones, each at its
		// selector, so that both DKIM records are followed to their key.
		ks, err := s.st.DKIMKeys(ctx, d.ID)
		if err != nil {
			return d, Transient, err
		}
		row := store.DomainRow{ID: d.ID, Name: d.Name, Sandbox: d.Sandbox, Token: d.Token, Selector: d.DKIMSelector,
			DKIMTXT: d.DKIMTXT, DMARCPolicy: d.DMARCPolicy, DMARCRUA: d.DMARCRUA, DMARCPct: d.DMARCPct, Extra: servedKeys(ks)}
		if a := keysByState(ks).active; a != nil {
			row.BYOK = a.BYOK
		}
		recs = ExpectServed(recs, ZoneRecordsFromRows([]store.DomainRow{row}, s.opts.Served))
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	recs = Check(cctx, r, recs)
	cancel()
	if err := ctx.Err(); err != nil {
		return d, Transient, fmt.Errorf("domains: check of %s interrupted: %w", d.Name, err)
	}
	outcome := OutcomeOf(recs)
	now := s.opts.Now()

	var refused error
	if outcome == AllOK && !CanSend(Status(d.Status)) {
		taken, err := s.st.VerifiedElsewhere(ctx, d.Name, d.OrgID)
		if err != nil {
			return d, outcome, err
		}
		if taken {
			refused = &StateError{Code: "conflict", Message: fmt.Sprintf("domain %s is verified by another organization", d.Name)}
			outcome = Transient // the records are right, but the name is not this organization's to take: no state change
		}
	}
	prev := d
	st := Next(stateOf(d), outcome, now, s.opts.Grace, manual)
	applyState(&d, st)
	d.LastCheckedAt = store.At(now)
	d.NextCheckAt = planCheck(d, s.opts.Interval, s.opts.Grace)
	b, err := json.Marshal(recs)
	if err != nil {
		return d, outcome, err
	}
	d.Records = string(b)

	var events []store.Event
	if manual {
		detail := "manual verify: " + summary(recs)
		if refused != nil {
			detail += "; refused: " + refused.Error()
		}
		events = append(events, store.Event{OrgID: d.OrgID, Subject: subject(d.Name), Kind: "domain.checked", Detail: detail, At: store.At(now)})
	}
	if prev.Status != d.Status {
		events = append(events, store.Event{OrgID: d.OrgID, Subject: subject(d.Name), Kind: "domain." + d.Status,
			Detail: fmt.Sprintf("%s -> %s: %s", prev.Status, d.Status, summary(recs)), At: store.At(now)})
		s.opts.Logger.Info("domain status changed", "domain", d.Name, "org", orgName(ctx, s.st, d.OrgID), "from", prev.Status, "to", d.Status)
	}
	if err := s.st.UpdateDomainCheck(ctx, prev, d, events); err != nil {
		return d, outcome, err
	}
	return d, outcome, refused
}

// summary lists the records that are not ok, or says all are.
func summary(recs []Record) string {
	out := ""
	for _, r := range recs {
		if r.Status == "ok" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += fmt.Sprintf("%s %s %s", r.Purpose, r.Host, r.Status)
	}
	if out == "" {
		return "all records ok"
	}
	return out
}

func stateOf(d store.Domain) State {
	return State{Status: Status(d.Status), VerifiedAt: d.VerifiedAt.Ptr(), FirstMissAt: d.FirstMissAt.Ptr(), History: d.History, CreatedAt: d.CreatedAt.Time}
}

func applyState(d *store.Domain, st State) {
	d.Status, d.History = string(st.Status), st.History
	d.VerifiedAt, d.FirstMissAt = store.Time{}, store.Time{}
	if st.VerifiedAt != nil {
		d.VerifiedAt = store.At(*st.VerifiedAt)
	}
	if st.FirstMissAt != nil {
		d.FirstMissAt = store.At(*st.FirstMissAt)
	}
}

// SetAccess restricts the domain to the named accounts of the organization,
// or opens it to all of them. An unknown account name is a field error.
func (s *Service) SetAccess(ctx context.Context, org store.Org, name string, restricted bool, accounts []string) (store.Domain, error) {
	d, err := s.st.DomainByName(ctx, org.ID, name)
	if err != nil {
		return store.Domain{}, err
	}
	if d.Sandbox {
		return d, &StateError{Code: "sandbox_domain", Message: fmt.Sprintf("%s is the organization's sandbox domain: every account may use it", name)}
	}
	if !restricted && len(accounts) > 0 {
		return d, &FieldError{Field: "accounts", Message: "accounts can only be listed when restricted is true"}
	}
	var ids []string
	seen := map[string]bool{}
	for i, a := range accounts {
		acct, err := s.st.AccountByName(ctx, org.ID, a)
		if errors.Is(err, store.ErrNotFound) {
			return d, &FieldError{Field: fmt.Sprintf("accounts[%d]", i), Message: fmt.Sprintf("no SMTP account %q in this organization", a)}
		}
		if err != nil {
			return d, err
		}
		if !seen[acct.ID] {
			seen[acct.ID] = true
			ids = append(ids, acct.ID)
		}
	}
	detail := "unrestricted: every account may send"
	if restricted {
		detail = fmt.Sprintf("restricted to %v", accounts)
	}
	ev := store.Event{OrgID: org.ID, Subject: subject(d.Name), Kind: "domain.access", Detail: detail, At: store.At(s.opts.Now())}
	if err := s.st.SetAccess(ctx, d.ID, restricted, ids, ev); err != nil {
		return d, err
	}
	d.Restricted = restricted
	return d, nil
}

// Delete removes the domain, its key and its grants; the sandbox domain
// cannot be deleted.
func (s *Service) Delete(ctx context.Context, org store.Org, name string) error {
	d, err := s.st.DomainByName(ctx, org.ID, name)
	if err != nil {
		return err
	}
	if d.Sandbox {
		return &StateError{Code: "sandbox_domain", Message: fmt.Sprintf("%s is the organization's sandbox domain; it cannot be deleted", name)}
	}
	ev := store.Event{OrgID: org.ID, Subject: subject(name), Kind: "domain.deleted", At: store.At(s.opts.Now())}
	return s.st.DeleteDomain(ctx, org.ID, name, ev)
}

// orgName is the name of organization id for log lines (people know
// organizations by name); the id when it cannot be read.
func orgName(ctx context.Context, st *store.Store, id string) string {
	if o, err := st.OrgByID(ctx, id); err == nil {
		return o.Name
	}
	return id
}
