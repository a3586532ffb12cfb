package gatelisten_test

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/internal/gatelisten"
	"github.com/sendergate/sendergate/internal/logtest"
)

const greeting = "hello from the gate\n"

// serve runs an accept loop on l that hands each connection a greeting,
// and returns the remote addresses the handler got. The channel is closed
// once the listener is closed and the loop has ended, so a test that
// closes l sees every connection the handler ever got.
func serve(t *testing.T, l net.Listener) <-chan string {
	t.Helper()
	got := make(chan string, 16)
	go func() {
		defer close(got)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- c.RemoteAddr().String()
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return got
}

// dialFrom connects from the local IP from to addr and returns everything
// the server sent until it closed the connection.
func dialFrom(t *testing.T, from, addr string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails, it is not measured
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v (want the greeting or a clean EOF)", addr, err)
	}
	return string(b)
}

// refused is the value of sendergate_<name>_peer_refused_total in reg, or
// -1 when the series does not exist.
func refused(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "sendergate_"+name+"_peer_refused_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

func TestTCPAdmitsOnlyPeers(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		peers  []string
		from   string
		served bool
	}{
		{name: "listed IPv4 peer", listen: "127.0.0.1:0", peers: []string{"127.0.0.1"}, from: "127.0.0.1", served: true},
		{name: "unlisted IPv4 peer", listen: "127.0.0.1:0", peers: []string{"127.0.0.1"}, from: "127.0.0.2"},
		{name: "peer inside a listed prefix", listen: "127.0.0.1:0", peers: []string{"127.0.0.0/30"}, from: "127.0.0.2", served: true},
		{name: "peer outside a listed prefix", listen: "127.0.0.1:0", peers: []string{"127.0.0.0/31"}, from: "127.0.0.2"},
		{name: "unlisted IPv6 peer", listen: "[::1]:0", peers: []string{"127.0.0.1"}, from: "::1"},
		{name: "listed IPv6 peer", listen: "[::1]:0", peers: []string{"127.0.0.1", "::1"}, from: "::1", served: true},
		{name: "empty peers admit no one", listen: "127.0.0.1:0", peers: nil, from: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers, err := gatelisten.ParsePeers(tt.peers)
			if err != nil {
				t.Fatal(err)
			}
			var logs logtest.Buffer
			reg := prometheus.NewRegistry()
			l, err := gatelisten.Listen(tt.listen, gatelisten.Options{Name: "milter", Peers: peers,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg})
			if err != nil {
				if strings.Contains(tt.listen, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			if got := refused(t, reg, "milter"); got != 0 {
				t.Fatalf("refusal counter before any connection = %v, want a series at 0", got)
			}
			got := serve(t, l)

			data := dialFrom(t, tt.from, l.Addr().String())
			l.Close()
			var handled []string
			for a := range got { // closed once the accept loop has ended
				handled = append(handled, a)
			}

			if tt.served {
				if data != greeting || len(handled) != 1 {
					t.Errorf("admitted peer: read %q, handler got %v; want the greeting and one connection", data, handled)
				}
				if n := refused(t, reg, "milter"); n != 0 {
					t.Errorf("refusal counter = %v, want 0", n)
				}
				return
			}
			if data != "" || len(handled) != 0 {
				t.Errorf("refused peer: read %q, handler got %v; want a clean EOF with nothing sent and no connection handled", data, handled)
			}
			if n := refused(t, reg, "milter"); n != 1 {
				t.Errorf("refusal counter = %v, want 1", n)
			}
			remote := "remote=" + tt.from + ":"
			if strings.Contains(tt.from, ":") {
				remote = "remote=[" + tt.from + "]:"
			}
			if line := logs.String(); !strings.Contains(line, "listener=milter") || !strings.Contains(line, remote) {
				t.Errorf("log %q lacks the listener and %s", line, remote)
			}
		})
	}
}

// TestTCPRefusalKeepsServing: a refused peer does not stop the listener;
// the next admitted connection is the first the handler gets.
func TestTCPRefusalKeepsServing(t *testing.T) {
	peers, _ := gatelisten.ParsePeers([]string{"127.0.0.1"})
	l, err := gatelisten.Listen("127.0.0.1:0", gatelisten.Options{Name: "policyd", Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	got := serve(t, l)
	for range 3 {
		if data := dialFrom(t, "127.0.0.2", l.Addr().String()); data != "" {
			t.Fatalf("refused peer read %q", data)
		}
	}
	if data := dialFrom(t, "127.0.0.1", l.Addr().String()); data != greeting {
		t.Fatalf("admitted peer read %q, want the greeting", data)
	}
	if first := <-got; !strings.HasPrefix(first, "127.0.0.1:") {
		t.Errorf("the handler's first connection came from %s, want 127.0.0.1", first)
	}
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := gatelisten.Listen("127.0.0.1:0", gatelisten.Options{Name: "milter", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := gatelisten.Listen("127.0.0.1:0", gatelisten.Options{Name: "milter", Registerer: reg}); err == nil {
		l2.Close()
		t.Error("a second milter listener on one registry: want a registration error")
	}
}
