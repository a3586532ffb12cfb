package store

import (
	"context"
	"fmt"
)

// ReturnPathOwner is the organization and sending domain behind a
// return-path domain.
type ReturnPathOwner struct {
	OrgID  string `db:"org_id"`
	Domain string `db:"name"`
}

// ReturnPathOwner finds the domain that can send (verified or failing)
// behind a return-path domain, as domains.ParseEnvelopeDomain splits it:
// by token for T.bounce.ZONE (a domain without a return-path label), else
// by return-path label and name. ok is false when no such domain exists.
// One indexed query (domains.token is unique, and a name is verified in
// one organization at most).
func (s *Store) ReturnPathOwner(ctx context.Context, label, name, token string) (owner ReturnPathOwner, ok bool, err error) {
	var rows []ReturnPathOwner
	if token != "" {
		err = s.rdb.SelectContext(ctx, &rows, s.rdb.Rebind(`SELECT org_id, name FROM domains
			WHERE token = ? AND return_path = '' AND status IN ('verified', 'failing')`), token)
	} else {
		err = s.rdb.SelectContext(ctx, &rows, s.rdb.Rebind(`SELECT org_id, name FROM domains
			WHERE name = ? AND return_path = ? AND status IN ('verified', 'failing')`), name, label)
	}
	if err != nil {
		return ReturnPathOwner{}, false, fmt.Errorf("store: return-path owner of %s: %w", name+token, err)
	}
	if len(rows) != 1 {
		return ReturnPathOwner{}, false, nil
	}
	return rows[0], true, nil
}
