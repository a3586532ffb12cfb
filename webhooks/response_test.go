package webhooks_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/webhooks"
)

// TestLargeResponseIsCut: a receiver answering with a 10 MiB body gets
// its connection closed after the first 64 KiB are read: with a small
// send buffer it cannot write even 1 MiB of the body. The attempt is
// recorded with the response's status (delivered on 200, retried on 500).
func TestLargeResponseIsCut(t *testing.T) {
	const total = 10 << 20
	for _, tc := range []struct {
		name       string
		code       int
		wantStatus string
	}{
		{name: "ok", code: 200, wantStatus: store.DeliveryDelivered},
		{name: "error", code: 500, wantStatus: store.DeliveryPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachDatabase(t, func(t *testing.T, open func() *store.Store) {
				written := make(chan int, 1)
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/octet-stream")
					w.WriteHeader(tc.code)
					chunk := []byte(strings.Repeat("x", 32<<10))
					n := 0
					for n < total {
						m, err := w.Write(chunk)
						n += m
						if err != nil {
							break
						}
						w.(http.Flusher).Flush()
					}
					written <- n
				}))
				// A small send buffer, so that what the server could write
				// is close to what the client read.
				srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
					if st == http.StateNew {
						_ = c.(*net.TCPConn).SetWriteBuffer(4 << 10)
					}
				}
				srv.Start()
				defer srv.Close()
				s := open()
				org := newOrg(t, s)
				wh := newWebhook(t, s, org, srv.URL+"/big", "whsec_big")
				verified(t, s, org, "example.com", time.Now())
				d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true})
				if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
					t.Fatalf("RunOnce: %d %v", n, err)
				}
				var n int
				select {
				case n = <-written:
				case <-time.After(30 * time.Second):
					t.Fatal("the receiver could still write after the attempt ended: the connection was not closed")
				}
				if n >= 1<<20 {
					t.Errorf("receiver wrote %d bytes of %d; the deliverer read far past its 64 KiB cap", n, total)
				}
				ds, _ := s.Deliveries(context.Background(), wh.ID, 1)
				if len(ds) != 1 || ds[0].Status != tc.wantStatus || ds[0].LastStatusCode != tc.code || ds[0].Attempts != 1 {
					t.Errorf("deliveries %+v, want %s with %d after one attempt", ds, tc.wantStatus, tc.code)
				}
			})
		})
	}
}
