package limits_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestTwoInstancesOnePostgres is the bound of the package comment,
// measured: two instances (two stores, two limiters, each settling every
// 5 ms) on one PostgreSQL, eight senders each, admitting one recipient
// at a time as fast as they can and giving back one in ten (transactions
// that did not complete), for one account whose hour limit is far below
// the demand. The recipients admitted and kept never exceed the limit,
// and none of the budget is lost: once both instances stopped, a third
// one admits exactly what is left.
func TestTwoInstancesOnePostgres(t *testing.T) {
	const (
		limit    = 2000
		senders  = 8
		attempts = 800 // per sender: 12,800 in all, 6.4 times the limit
	)
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	open := func() *store.Store {
		return storetest.OpenPostgres(t, dsn)
	}
	st := open()
	clock := clocktest.New(t0) // one window throughout; the syncs run on the real ticker
	app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Hour: limit}}

	var admitted, released atomic.Int64
	var leases float64
	var wg sync.WaitGroup
	var ls []*limits.Limiter
	var regs []*prometheus.Registry
	for i := range 2 {
		reg := prometheus.NewRegistry()
		l := limits.New(open(), limits.Options{Now: clock.Now, Sync: 5 * time.Millisecond, Registerer: reg})
		runCtx, stop := context.WithCancel(ctx)
		go l.Run(runCtx)
		t.Cleanup(stop)
		ls, regs = append(ls, l), append(regs, reg)
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(s)))
				for range attempts {
					r, ref := l.Admit(ctx, app.scopes(), 1)
					if ref != nil {
						if ref.Unavailable {
							t.Errorf("instance %d: %+v", i, ref)
							return
						}
						continue
					}
					admitted.Add(1)
					if rng.IntN(10) == 0 {
						l.Release(r)
						released.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	kept := admitted.Load() - released.Load()
	for i, l := range ls {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		leases += counterValue(t, regs[i], "sendergate_limits_store_exchanges_total", "lease")
	}
	left, _ := admitN(limits.New(st, limits.Options{Now: clock.Now}), app, limit+1)
	t.Logf("limit %d: admitted %d, released %d, kept %d (over the limit by %d); %d left for a third instance; %.0f lease round trips for %d admissions",
		limit, admitted.Load(), released.Load(), kept, max(0, kept-limit), left, leases, admitted.Load())
	if kept > limit {
		t.Errorf("two instances kept %d recipients, %d over the limit of %d", kept, kept-limit, limit)
	}
	if kept+int64(left) != limit {
		t.Errorf("kept %d + left %d = %d, want the limit %d: budget was lost or made up", kept, left, kept+int64(left), limit)
	}
	if leases >= float64(admitted.Load()) {
		t.Errorf("%.0f lease round trips for %d admissions: the store is asked per recipient", leases, admitted.Load())
	}
}

// counterValue returns the value of the counter name whose first label
// has value label.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}
