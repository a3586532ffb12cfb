package policy

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// deltas is a Source that serves prepared deltas: the engine's apply
// logic, without a database (the loader package tests the real store).
type deltas struct {
	mu       sync.Mutex
	version  int64
	next     map[int64]*Delta // by the since version it answers
	versions int              // calls of Version
}

func (d *deltas) Version(context.Context) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.versions++
	return d.version, nil
}

func (d *deltas) Load(_ context.Context, since int64) (*Delta, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if x, ok := d.next[since]; ok {
		return x, nil
	}
	return nil, errors.New("no delta prepared")
}

func org(id, name string, domains ...DomainInput) OrgInput {
	return OrgInput{ID: id, Name: name, Domains: domains,
		Accounts: []AccountInput{{ID: id + "-app", Name: "app", Username: "app@" + name, PasswordHash: HashPassword("pw-" + name)}}}
}

func verified(name string) DomainInput {
	return DomainInput{ID: "d-" + name, Name: name, Status: "verified", Selector: "sg1", BounceDomain: "t.bounce.sg.test"}
}

// TestIncrementalApply: a delta replaces the changed organizations' views
// and shares every other one; an organization listed without data is gone.
func TestIncrementalApply(t *testing.T) {
	src := &deltas{version: 1, next: map[int64]*Delta{
		0: {Version: 1, Full: true, Orgs: []OrgInput{org("o1", "acme", verified("a.example")), org("o2", "beta", verified("b.example")), org("o3", "gone")}},
		1: {Version: 4, Changed: []string{"o1", "o3"}, Orgs: []OrgInput{org("o1", "acme", verified("a.example"), verified("new.example"))}},
	}}
	e := NewEngine(src, Options{})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	s1, _ := e.Current()
	src.version = 4
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2, _ := e.Current()
	if s2.Version() != 4 {
		t.Fatalf("version %d, want 4", s2.Version())
	}
	o1, _ := s1.orgs.get("o2")
	o2, _ := s2.orgs.get("o2")
	if o1 == nil || o1 != o2 {
		t.Error("an unchanged organization's view was rebuilt, not shared")
	}
	// Shards the change did not touch are shared too, not copied.
	shared := 0
	for i := range indexShards {
		if s1.orgs.shard(i) != nil && sameMap(s1.orgs.shard(i), s2.orgs.shard(i)) {
			shared++
		}
	}
	if want := nonEmpty(s1.orgs) - 2; shared < want {
		t.Errorf("%d shards shared after a change of 2 organizations, want at least %d", shared, want)
	}
	acme, ok := s2.Account("app@acme")
	if !ok || !s2.Decide(acme, "x@new.example").Allowed {
		t.Error("the changed organization's new domain is not allowed")
	}
	if _, ok := s2.Account("app@gone"); ok {
		t.Error("a removed organization's account still authenticates")
	}
	if old, _ := s1.Account("app@acme"); s1.Decide(old, "x@new.example").Allowed {
		t.Error("the previous snapshot changed: snapshots must be immutable")
	}
	if o, d := s2.Counts(); o != 2 || d != 3 {
		t.Errorf("counts = %d orgs, %d domains; want 2, 3", o, d)
	}
	// Nothing changed: Refresh reads nothing and keeps the snapshot.
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s3, _ := e.Current(); s3 != s2 {
		t.Error("a refresh without changes swapped the snapshot")
	}
}

// TestChanged: after a write, Changed applies the change without reading
// the state version first, and a second call with nothing new keeps the
// snapshot.
func TestChanged(t *testing.T) {
	src := &deltas{version: 1, next: map[int64]*Delta{
		0: {Version: 1, Full: true, Orgs: []OrgInput{org("o1", "acme", verified("a.example"))}},
		1: {Version: 2, Changed: []string{"o1"}, Orgs: []OrgInput{org("o1", "acme", verified("a.example"), verified("new.example"))}},
		2: {Version: 2},
	}}
	e := NewEngine(src, Options{})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.version = 2
	if err := e.Changed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.versions != 0 {
		t.Errorf("Changed read the state version %d times, want 0", src.versions)
	}
	s, _ := e.Current()
	if acme, ok := s.Account("app@acme"); !ok || !s.Decide(acme, "x@new.example").Allowed {
		t.Fatal("the change is not applied")
	}
	if err := e.Changed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s2, _ := e.Current(); s2 != s {
		t.Error("Changed without a change swapped the snapshot")
	}
}

// keys is a KeySource counting reads.
type keys struct {
	mu    sync.Mutex
	reads map[string]int
	fail  bool
}

func (k *keys) DomainKey(_ context.Context, id string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return "", errors.New("database unreachable")
	}
	k.reads[id]++
	return id, nil
}

func parse(id string) (crypto.Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, id)
	return ed25519.NewKeyFromSeed(seed), nil
}

// TestSignerCache: keys are read on first use and kept up to the cache
// size (least recently used out first) under their key id, so a change of
// the organization that leaves a key keeps it; a key given with the delta
// is parsed at once (no read later); a key that cannot be read is an
// error, never a nil signer.
func TestSignerCache(t *testing.T) {
	withKey := func(name, keyID, pem string) DomainInput {
		d := verified(name)
		d.KeyID, d.KeyPEM = keyID, pem
		return d
	}
	src := &deltas{version: 1, next: map[int64]*Delta{
		0: {Version: 1, Full: true, Orgs: []OrgInput{org("o1", "acme", withKey("a.example", "ka", ""), withKey("b.example", "kb", ""), withKey("c.example", "kc", ""))}},
		1: {Version: 2, Changed: []string{"o1"}, Orgs: []OrgInput{org("o1", "acme", withKey("a.example", "ka", ""), withKey("b.example", "kb", ""),
			withKey("c.example", "kc", ""), withKey("new.example", "knew", "d-new.example"))}},
	}}
	ks := &keys{reads: map[string]int{}}
	e := NewEngine(src, Options{Keys: ks, ParseKey: parse, KeyCache: 2})
	ctx := context.Background()
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := e.Current()
	dom := func(s *Snapshot, name string) *Domain { d, _ := s.Domain("o1", name); return d }
	for _, n := range []string{"a.example", "a.example", "b.example", "c.example", "a.example"} {
		if k, err := e.Signer(ctx, dom(s, n)); err != nil || k == nil {
			t.Fatalf("Signer(%s) = %v, %v", n, k, err)
		}
	}
	// a, a (cached), b, c (evicts a), a (read again, evicts b).
	if ks.reads["d-a.example"] != 2 || ks.reads["d-b.example"] != 1 || ks.reads["d-c.example"] != 1 {
		t.Errorf("reads = %v, want a twice, b and c once", ks.reads)
	}
	if e.keys.len() != 2 {
		t.Errorf("cache holds %d keys, want at most 2", e.keys.len())
	}
	src.version = 2
	if err := e.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s2, _ := e.Current()
	ks.fail = true // from now on, nothing can be read
	if k, err := e.Signer(ctx, dom(s2, "new.example")); err != nil || k == nil {
		t.Errorf("a key given with the delta needs a read: %v", err)
	}
	if k, err := e.Signer(ctx, dom(s2, "a.example")); err != nil || k == nil {
		t.Errorf("a key unchanged by the organization's change was dropped: %v", err)
	}
	if k, err := e.Signer(ctx, dom(s2, "b.example")); err == nil || k != nil {
		t.Errorf("an unreadable key gave %v, %v; want an error", k, err)
	}
}

// sameMap reports whether a and b are the same map (not equal contents).
func sameMap(a, b map[string]*orgView) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func nonEmpty(x *index) int {
	n := 0
	for i := range indexShards {
		if len(x.shard(i)) > 0 {
			n++
		}
	}
	return n
}

// TestIndex: puts, deletes and lookups across shards; a writer never
// changes the index it copied.
func TestIndex(t *testing.T) {
	w := edit(nil)
	for i := range 2000 {
		w.put(fmt.Sprint("org", i), &orgView{id: fmt.Sprint("org", i)})
	}
	a := w.x
	w2 := edit(a)
	w2.del("org7")
	w2.put("new", &orgView{id: "new"})
	b := w2.x
	if a.len() != 2000 || b.len() != 2000 {
		t.Fatalf("lens %d %d, want 2000 2000", a.len(), b.len())
	}
	if _, ok := a.get("org7"); !ok {
		t.Error("deleting from a copy changed the original")
	}
	if _, ok := b.get("org7"); ok {
		t.Error("deleted key still found")
	}
	if _, ok := a.get("new"); ok {
		t.Error("putting into a copy changed the original")
	}
	n := 0
	for range b.all() {
		n++
	}
	if n != 2000 {
		t.Errorf("all() yields %d views, want 2000", n)
	}
}
