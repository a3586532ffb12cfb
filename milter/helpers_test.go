package milter_test

import (
	"context"
	"crypto"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/milter"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// The test organization: account app@acme may send as example.com (return
// path rp.example.com) and the sandbox; pending.example is not verified and
// restricted.example is granted to nobody.
const (
	testUser     = "app@acme"
	testSelector = "sg1"
	testZone     = "sg.localhost"
	testSandbox  = "acme.sandbox.sg.localhost"
)

type fixture struct {
	engine *gate.Gate // the message stage on a loaded policy engine
	st     *store.Store
	pol    *policy.Engine
	key    crypto.Signer
	txt    string // the DKIM key record value of every test domain
}

// newFixture builds a migrated SQLite store with the test organization and
// a loaded policy engine.
func newFixture(t testing.TB, alg dkim.Algorithm) *fixture {
	t.Helper()
	ctx := context.Background()
	st := storetest.SQLite(t)
	key, err := dkim.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := dkim.TXTValue(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := store.At(time.Now())
	org := store.Org{ID: store.NewID(), Name: "acme", SandboxDomain: testSandbox, CreatedAt: now}
	domain := func(name, status, returnPath string) store.Domain {
		return store.Domain{ID: store.NewID(), OrgID: org.ID, Name: name, Token: store.NewID(), Status: status,
			ReturnPath: returnPath, DKIMSelector: testSelector, DKIMAlgorithm: string(alg), DKIMKey: pem,
			Records: "[]", CreatedAt: now, VerifiedAt: now}
	}
	sb := domain(testSandbox, "verified", "")
	sb.Sandbox = true
	if err := st.CreateOrg(ctx, org, sb); err != nil {
		t.Fatal(err)
	}
	acct := store.Account{ID: store.NewID(), OrgID: org.ID, Name: "app", Username: testUser,
		PasswordHash: policy.HashPassword("secret"), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	restricted := domain("restricted.example", "verified", "")
	for _, d := range []store.Domain{domain("example.com", "verified", "rp"), domain("pending.example", "pending", ""), restricted} {
		if err := st.CreateDomain(ctx, d, store.Event{OrgID: org.ID, Subject: "domain:" + d.Name, Kind: "domain.added", At: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetAccess(ctx, restricted.ID, true, nil, store.Event{OrgID: org.ID, Subject: "domain:restricted.example", Kind: "domain.access", At: now}); err != nil {
		t.Fatal(err)
	}
	eng := loader.NewEngine(st, testZone, nil, domains.ZoneOptions{}, policy.Options{})
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	return &fixture{engine: gate.New(eng, st, gate.Options{SandboxLimit: 100}), st: st, pol: eng, key: key, txt: txt}
}

// notLoaded is a gate on an engine that has never loaded a snapshot.
func notLoaded(t testing.TB) *gate.Gate {
	st := storetest.SQLite(t)
	return gate.New(loader.NewEngine(st, testZone, nil, domains.ZoneOptions{}, policy.Options{}), st, gate.Options{SandboxLimit: 100})
}

// startMilter serves a milter gate on 127.0.0.1:0 until the test ends.
func startMilter(t testing.TB, cfg milter.MilterConfig, stage milter.Stage) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := milter.NewMilter(cfg, stage)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("milter Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// startPolicyd serves a policy server on 127.0.0.1:0 until the test ends.
func startPolicyd(t testing.TB, cfg milter.PolicydConfig, stage milter.Stage) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := milter.NewPolicyd(cfg, stage)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("policyd Serve: %v", err)
		}
	})
	return l.Addr().String()
}
