package gate

import (
	"errors"
	"fmt"

	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
)

// authors extracts and normalizes every author mailbox the policy must
// check (RFC 5322 3.6.2 From and Sender, 3.6.6 Resent-From and
// Resent-Sender) and returns them with the first From mailbox's domain,
// the d= to sign as.
func authors(h *msg.Header) ([]string, string, *Refusal) {
	set, err := msg.AuthorMailboxes(h)
	if err != nil {
		return nil, "", fromError(err, "", "header")
	}
	return set.Mailboxes, set.Domain, nil
}

// badAuthor refuses an author address whose domain cannot be normalized
// (RFC 3463 5.1.7: bad sender's mailbox address syntax).
func badAuthor(kind, addr string) *Refusal {
	return &Refusal{Code: 550, Enhanced: [3]int{5, 1, 7}, Reason: string(policy.BadAddress),
		Text: fmt.Sprintf("%s address %q cannot be authorized: it has no valid domain", kind, addr)}
}

// decisionRefusal maps a policy refusal to its reply: 451 4.7.1 for the
// sandbox limit, 451 4.3.0 for other temporary refusals, 550 5.7.1 for a
// permanent one.
func decisionRefusal(d policy.Decision, fromDomain string) *Refusal {
	r := &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: d.Message(), Reason: string(d.Reason), Decision: d, FromDomain: fromDomain}
	switch {
	case d.Reason == policy.SandboxLimit:
		r.Code, r.Enhanced = 451, [3]int{4, 7, 1}
	case d.Temporary:
		r.Code, r.Enhanced = 451, [3]int{4, 3, 0}
	}
	return r
}

// fromError turns a refusal of package msg (550 5.6.0, 552 5.3.4) into a
// Refusal; anything else is an internal error.
func fromError(err error, id, reason string) *Refusal {
	var me *msg.Error
	if errors.As(err, &me) {
		return &Refusal{Code: me.Code, Enhanced: me.Enhanced, Text: me.Message, Reason: reason}
	}
	return internal(id, fmt.Errorf("gate: read message: %w", err), policy.Decision{}, "")
}

// internal is the 451 4.3.0 for an internal failure; err is logged once
// by the adapter, never shown to the client.
func internal(id string, err error, d policy.Decision, fromDomain string) *Refusal {
	text := "local error, try again later"
	if id != "" {
		text += " (id " + id + ")"
	}
	return &Refusal{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: text, Reason: string(policy.Internal), Decision: d,
		FromDomain: fromDomain, Err: err}
}
