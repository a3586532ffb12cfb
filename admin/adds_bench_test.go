package admin_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// BenchmarkAddDomain adds Ed25519 domains one by one through the API
// with an organization key, as issue 10 measures it: authentication, the
// organization, the registration's transaction, the local policy snapshot
// brought up to date (Changed) and the Domain output. It reports the
// latency percentiles of one add and, on PostgreSQL through a counting
// forwarder ("postgres-counted"; the extra hop makes its times slower),
// the protocol round trips and the statements one add costs (with
// PGTRACE=1 it prints each statement's text, truncated, to stderr).
// changed-p50-ms is the median of Changed alone: the snapshot reload.
//
//	go test -run '^$' -bench AddDomain -benchtime 2000x ./admin/
func BenchmarkAddDomain(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchAdds(b, storetest.SQLite(b), nil, "") })
	b.Run("postgres", func(b *testing.B) {
		app := "sgbench" + store.NewID()
		benchAdds(b, storetest.OpenPostgres(b, storetest.PostgresDSN(b)+"&application_name="+app), nil, app)
	})
	b.Run("postgres-counted", func(b *testing.B) {
		dsn := storetest.PostgresDSN(b)
		c := newPGCounter(b, dsn)
		benchAdds(b, storetest.OpenPostgres(b, c.via(dsn)), c, "")
	})
}

// cpuTime is the CPU time this process and, when app is set, the
// PostgreSQL backends of connections named app have used (read from
// /proc: the server runs on this machine), so that a figure holds on a
// machine others load too.
func cpuTime(tb testing.TB, app string) (self, server time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if app == "" {
		return self, 0
	}
	db, err := sql.Open("postgres", storetest.PostgresURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			tb.Fatal(err)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // not on this machine, or gone
		}
		// Fields 14 and 15 (utime, stime, in clock ticks of 10 ms) follow
		// the command name in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			server += time.Duration(u+k) * 10 * time.Millisecond
		}
	}
	return self, server
}

// benchOrgs is how many organizations the added domains are spread over.
const benchOrgs = 20

func benchAdds(b *testing.B, st *store.Store, c *pgCounter, app string) {
	ctx := context.Background()
	var refresh []time.Duration // of each Changed, one add at a time
	eng := loader.NewEngine(st, testZone, nil, domains.ZoneOptions{}, policy.Options{})
	srv, err := admin.New(admin.Options{Store: st, AdminKey: testAdminKey, Zone: testZone, SandboxZone: testSandbox,
		Domains: domains.NewService(st, domains.ServiceOptions{Zone: testZone, Interval: time.Hour, Grace: 72 * time.Hour}),
		Changed: func() {
			t := time.Now()
			if err := eng.Refresh(ctx); err != nil {
				b.Errorf("refresh: %v", err)
			}
			refresh = append(refresh, time.Since(t))
		}})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	cl := hs.Client()
	post := func(path, key string, body any, want int, out any) {
		j, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", hs.URL+path, bytes.NewReader(j))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		rb, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			b.Fatalf("POST %s: %d %s", path, res.StatusCode, rb)
		}
		if out != nil {
			if err := json.Unmarshal(rb, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	keys := make([]string, benchOrgs)
	for i := range keys {
		name := fmt.Sprintf("bench%d", i)
		post("/v1/orgs", testAdminKey, map[string]string{"name": name}, http.StatusCreated, nil)
		var k struct{ Key string }
		post("/v1/orgs/"+name+"/keys", testAdminKey, nil, http.StatusCreated, &k)
		keys[i] = k.Key
	}
	if err := eng.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	refresh = refresh[:0]
	c.reset()
	self0, server0 := cpuTime(b, app)
	b.ResetTimer()
	for k := range b.N {
		i := k % benchOrgs
		t := time.Now()
		post(fmt.Sprintf("/v1/orgs/bench%d/domains", i), keys[i],
			map[string]any{"name": fmt.Sprintf("d%d.bench%d.example", k, i), "return_path": "mailing", "dkim_algorithm": "ed25519"},
			http.StatusCreated, nil)
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	self1, server1 := cpuTime(b, app)
	b.ReportMetric(float64((self1-self0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	if app != "" {
		b.ReportMetric(float64((server1-server0).Microseconds())/1000/float64(b.N), "pg-cpu-ms/op")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	slices.Sort(refresh)
	b.ReportMetric(float64(refresh[len(refresh)/2].Microseconds())/1000, "changed-p50-ms")
	if c != nil {
		rt, stmts := c.counts()
		b.ReportMetric(float64(rt)/float64(b.N), "roundtrips/op")
		b.ReportMetric(float64(stmts)/float64(b.N), "statements/op")
	}
}

// pgCounter forwards PostgreSQL connections and counts, over all of
// them, the round trips (each time a client writes again after the
// server answered) and the statements (simple queries and executes of
// the extended protocol).
type pgCounter struct {
	target     string
	addr       string
	roundTrips atomic.Int64
	statements atomic.Int64
}

func newPGCounter(tb testing.TB, dsn string) *pgCounter {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c := &pgCounter{target: u.Host, addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, cn := range conns {
			cn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			cn, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", c.target)
			if err != nil {
				cn.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cn, up)
			mu.Unlock()
			var answered atomic.Bool
			answered.Store(true)
			wg.Go(func() { c.fromClient(cn, up, &answered) })
			wg.Go(func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						answered.Store(true)
						if _, werr := cn.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						cn.Close()
						return
					}
				}
			})
		}
	})
	return c
}

// fromClient copies the client's messages to the server, counting them.
func (c *pgCounter) fromClient(cn, up net.Conn, answered *atomic.Bool) {
	defer up.Close()
	var msg []byte
	startup := true // the first message has no type byte
	buf := make([]byte, 64<<10)
	for {
		n, err := cn.Read(buf)
		if n > 0 {
			if answered.Swap(false) {
				c.roundTrips.Add(1)
			}
			msg = append(msg, buf[:n]...)
			for {
				hdr := 5
				if startup {
					hdr = 4
				}
				if len(msg) < hdr {
					break
				}
				size := int(binary.BigEndian.Uint32(msg[hdr-4 : hdr]))
				if len(msg) < hdr-4+size {
					break
				}
				if !startup && (msg[0] == 'Q' || msg[0] == 'E') {
					c.statements.Add(1)
				}
				if !startup && (msg[0] == 'Q' || msg[0] == 'P') && os.Getenv("PGTRACE") != "" {
					q := string(msg[5 : hdr-4+size])
					if msg[0] == 'P' {
						q = q[1:]
					}
					if len(q) > 110 {
						q = q[:110]
					}
					fmt.Fprintf(os.Stderr, "TRACE %c %s\n", msg[0], strings.Join(strings.Fields(q), " "))
				}
				msg = msg[hdr-4+size:]
				startup = false
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// via returns dsn with its host replaced by the forwarder's.
func (c *pgCounter) via(dsn string) string {
	u, _ := url.Parse(dsn)
	u.Host = c.addr
	return u.String()
}

func (c *pgCounter) reset() {
	if c != nil {
		c.roundTrips.Store(0)
		c.statements.Store(0)
	}
}

func (c *pgCounter) counts() (roundTrips, statements int64) {
	return c.roundTrips.Load(), c.statements.Load()
}
