package policy

import (
	"context"
	"testing"
)

// TestReturnPathOrg: the bounce receiver finds the organization of a
// return-path domain in the snapshot; a domain that cannot send, a deleted
// domain and a deleted organization are not served, and an incremental
// change updates the index without touching other organizations' entries.
func TestReturnPathOrg(t *testing.T) {
	dom := func(name, status, rp string) DomainInput {
		return DomainInput{ID: "d-" + name, Name: name, Status: status, Selector: "sg1", BounceDomain: rp}
	}
	src := &deltas{version: 1, next: map[int64]*Delta{
		0: {Version: 1, Full: true, Orgs: []OrgInput{
			org("o1", "acme", dom("a.example", "verified", "bounces.a.example"), dom("p.example", "pending", "bounces.p.example")),
			org("o2", "beta", dom("b.example", "failing", "t2.bounce.sg.test")),
			org("o3", "gone", dom("g.example", "verified", "bounces.g.example")),
		}},
		// o1 loses a.example and gains c.example; o3 is deleted.
		1: {Version: 2, Changed: []string{"o1", "o3"}, Orgs: []OrgInput{
			org("o1", "acme", dom("c.example", "verified", "bounces.c.example"), dom("p.example", "revoked", "bounces.p.example")),
		}},
	}}
	e := NewEngine(src, Options{})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		s, err := e.Current()
		if err != nil {
			t.Fatal(err)
		}
		for rp, org := range want {
			got, ok := s.ReturnPathOrg(rp)
			if _, name, ok2 := s.ReturnPathDomain(rp); ok2 != ok || (ok && name == "") {
				t.Errorf("%s: ReturnPathDomain(%s) = %q %v, disagrees with ReturnPathOrg", step, rp, name, ok2)
			}
			if org == "" && ok {
				t.Errorf("%s: %s is served (org %s), want not served", step, rp, got)
			}
			if org != "" && (!ok || got != org) {
				t.Errorf("%s: %s -> %q %v, want %s", step, rp, got, ok, org)
			}
		}
	}
	check("full load", map[string]string{
		"bounces.a.example": "o1", "t2.bounce.sg.test": "o2", "bounces.g.example": "o3",
		"bounces.p.example": "", "bounces.unknown.example": "",
	})
	src.version = 2
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after the change", map[string]string{
		"bounces.a.example": "", "bounces.c.example": "o1", "t2.bounce.sg.test": "o2",
		"bounces.g.example": "", "bounces.p.example": "",
	})
}
