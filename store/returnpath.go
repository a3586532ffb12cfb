package store

import (
	"context"
	"fmt"
	"strings"
)

// ReturnPathOwner is the organization and sending domain behind a
// return-path domain.
type ReturnPathOwner struct {
	OrgID  string `db:"org_id"`
	Domain string `db:"name"`
}

// ReturnPathOwner finds the domain that can send (verified or failing)
// whose bounce domain is rp (lowercase, no trailing dot), the inverse of
// domains.EnvelopeDomain: LABEL.D for a domain D with return path LABEL,
// or T.bounce.ZONE for the domain with token T and no return path. ok is
// false when no such domain exists. One indexed query (domains.token is
// unique, and a name is verified in one organization at most).
func (s *Store) ReturnPathOwner(ctx context.Context, rp, zone string) (owner ReturnPathOwner, ok bool, err error) {
	var rows []ReturnPathOwner
	if token, found := strings.CutSuffix(rp, ".bounce."+zone); found && token != "" && !strings.Contains(token, ".") {
		err = s.rdb.SelectContext(ctx, &rows, s.rdb.Rebind(`SELECT org_id, name FROM domains
			WHERE token = ? AND return_path = '' AND status IN ('verified', 'failing')`), token)
	} else if label, name, found := strings.Cut(rp, "."); found && label != "" && strings.Contains(name, ".") {
		err = s.rdb.SelectContext(ctx, &rows, s.rdb.Rebind(`SELECT org_id, name FROM domains
			WHERE name = ? AND return_path = ? AND status IN ('verified', 'failing')`), name, label)
	}
	if err != nil {
		return ReturnPathOwner{}, false, fmt.Errorf("store: return-path domain %s: %w", rp, err)
	}
	if len(rows) != 1 {
		return ReturnPathOwner{}, false, nil
	}
	return rows[0], true, nil
}
