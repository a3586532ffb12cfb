package gate

import (
	"context"
	"strings"

	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/policy"
)

// Limiter admits recipients under the sending limits; *limits.Limiter
// implements it.
type Limiter interface {
	// Admit admits n recipients in every scope, or refuses them all.
	Admit(ctx context.Context, scopes []limits.Scope, n int64) (limits.Reservation, *limits.Refused)
	// Release gives back recipients of a transaction that did not
	// complete.
	Release(r limits.Reservation)
}

var _ Limiter = (*limits.Limiter)(nil)

// Hold is the recipients a transaction was admitted for by Recipients;
// the zero Hold holds none. An adapter keeps one per transaction and
// gives it to Release when the transaction does not complete (its DATA
// refused, RSET, an abort), so they count against no limit.
type Hold struct{ r limits.Reservation }

// Add adds o's recipients to h.
func (h *Hold) Add(o Hold) { h.r.Add(o.r) }

// Recipients admits n more recipients of env's account (usually one, at
// RCPT) under the sending limits of the account and of its organization,
// in every window, resolved on the current snapshot. Past a limit the
// Refusal is 451 4.7.0 naming the scope, the window and when it frees up;
// when the limit cannot be checked (the shared counters unreachable and
// this instance's slice spent) it is 451 4.7.0 too: fail closed. An
// account the snapshot does not know is left to the message stage, which
// refuses it with its own reply.
//
// Before the limits, each of env.Rcpts (the recipients being admitted,
// when the adapter gives them) is looked up in the organization's
// suppression list: a suppressed one is refused with 550 5.1.1 and a text
// that says why, since when and how to lift it.
func (g *Gate) Recipients(ctx context.Context, env *Envelope, n int) (Hold, *Refusal) {
	if (g.opts.Limiter == nil && g.opts.Suppressions == nil) || n <= 0 {
		return Hold{}, nil
	}
	snap, acct, ref := g.account(env.Username, env.AccountID)
	if ref != nil {
		return Hold{}, nil
	}
	if ref := g.suppressed(acct.OrgID, env.Rcpts); ref != nil {
		return Hold{}, ref
	}
	if g.opts.Limiter == nil {
		return Hold{}, nil
	}
	now := g.opts.Now()
	orgL, acctL := g.opts.Limits.Resolve(values(snap.OrgLimits(acct.OrgID)), values(acct.Limits), acct.Created, now)
	scopes := []limits.Scope{
		{Kind: limits.Account, ID: acct.ID, OrgID: acct.OrgID, Name: acct.Username, Limits: acctL},
		{Kind: limits.Organization, ID: acct.OrgID, OrgID: acct.OrgID, Name: acct.Org, Limits: orgL},
	}
	r, refused := g.opts.Limiter.Admit(ctx, scopes, int64(n))
	if refused != nil {
		reason := "limit"
		if refused.Unavailable {
			reason = "limit_unavailable"
		}
		// RFC 3463 4.7.0: a security or policy status, temporary, so that
		// the client retries after the window and nothing is lost.
		return Hold{}, &Refusal{Code: 451, Enhanced: [3]int{4, 7, 0}, Text: refused.Text(now), Reason: reason}
	}
	return Hold{r: r}, nil
}

// Release gives back the recipients of h: its transaction did not
// complete. Releasing the zero Hold does nothing.
func (g *Gate) Release(h Hold) {
	if g.opts.Limiter != nil && !h.r.Empty() {
		g.opts.Limiter.Release(h.r)
	}
}

// Suppressed refuses the first of env.Rcpts that env's organization has
// suppressed, as Recipients does, without admitting anything under the
// sending limits (the policy service, when the milter counts them). An
// account the snapshot does not know is left to the message stage.
func (g *Gate) Suppressed(env *Envelope) *Refusal {
	if g.opts.Suppressions == nil {
		return nil
	}
	_, acct, ref := g.account(env.Username, env.AccountID)
	if ref != nil {
		return nil
	}
	return g.suppressed(acct.OrgID, env.Rcpts)
}

func (g *Gate) suppressed(orgID string, rcpts []string) *Refusal {
	if g.opts.Suppressions == nil {
		return nil
	}
	for _, rcpt := range rcpts {
		if reason, text, ok := g.opts.Suppressions.Suppressed(orgID, bareAddress(rcpt)); ok {
			// RFC 3463 5.1.1: bad destination mailbox address, the code
			// receivers' own bounces for such addresses carry.
			return g.metrics.refused(&Refusal{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: text, Reason: "suppressed_" + reason})
		}
	}
	return nil
}

// Suppressions is an organization's suppression list, read from memory
// (no query per recipient).
type Suppressions interface {
	// Suppressed reports whether orgID's recipient email is suppressed,
	// with the reason (bounce, complaint, manual) and the reply text.
	Suppressed(orgID, email string) (reason, text string, ok bool)
}

// bareAddress strips the angle brackets an MTA may pass a recipient in
// (the milter's RCPT argument).
func bareAddress(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	return s
}

// values converts stored limits to the limits package's form.
func values(l *policy.Limits) *limits.Values {
	if l == nil {
		return nil
	}
	return &limits.Values{l.PerMinute, l.PerHour, l.PerDay}
}
