package zone

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// recordingWriter is a dns.ResponseWriter that keeps what ServeDNS writes,
// so the fuzz test can drive the handler without sockets.
type recordingWriter struct {
	remote net.Addr
	msgs   []*dns.Msg
}

func (w *recordingWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *recordingWriter) RemoteAddr() net.Addr      { return w.remote }
func (w *recordingWriter) WriteMsg(m *dns.Msg) error { w.msgs = append(w.msgs, m); return nil }
func (w *recordingWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msgs = append(w.msgs, m)
	return len(b), nil
}
func (w *recordingWriter) Close() error        { return nil }
func (w *recordingWriter) TsigStatus() error   { return nil }
func (w *recordingWriter) TsigTimersOnly(bool) {}
func (w *recordingWriter) Hijack()             {}

func FuzzServeDNS(f *testing.F) {
	for _, q := range []*dns.Msg{
		query(dkimName, dns.TypeTXT),
		query("sg.localhost.", dns.TypeAXFR),
		query("sg.localhost.", dns.TypeIXFR),
		new(dns.Msg).SetIxfr("sg.localhost.", 1, "ns1.sg.localhost.", "hostmaster.sg.localhost."),
		query("nope.sg.localhost.", dns.TypeA),
		query("big.sg.localhost.", dns.TypeANY).SetEdns0(4096, true),
		query("example.com.", dns.TypeNS),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}, AllowTransfer: []string{"127.0.0.1"}})
	if err != nil {
		f.Fatal(err)
	}
	s.Update(1, append(testRecords(), bigRRset("big.sg.localhost.", 10)...))
	s.Update(2, append(testRecords(), append(bigRRset("big.sg.localhost.", 10), TXT("new.sg.localhost", 0, "x"))...)) // a journaled change
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		r := new(dns.Msg)
		if err := r.Unpack(packet); err != nil {
			return
		}
		w := &recordingWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5300}}
		if tcp {
			w.remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5300}
		}
		s.ServeDNS(w, r)
		if r.Response && len(w.msgs) > 0 {
			t.Fatal("answered a response")
		}
		for _, m := range w.msgs {
			b, err := m.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, m)
			}
			if !tcp && len(b) > maxUDPSize {
				t.Fatalf("UDP reply of %d bytes", len(b))
			}
			if m.Id != r.Id || !m.Response {
				t.Fatalf("reply id %d response %v for query id %d", m.Id, m.Response, r.Id)
			}
		}
	})
}

// FuzzPlainInZone checks the fast path of accept: a name it keeps as it is
// must be one normalizeName leaves unchanged, strictly inside the zone.
func FuzzPlainInZone(f *testing.F) {
	for _, name := range []string{dkimName, "sg.localhost.", "x.sg.localhost", "X.sg.localhost.", `a\.sg.localhost.`,
		"xsg.localhost.", "a..sg.localhost.", "_dmarc.sg.localhost.", strings.Repeat("a", 64) + ".sg.localhost.", "a.sg.localhost.."} {
		f.Add(name)
	}
	s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !s.plainInZone(name) {
			return
		}
		n, err := normalizeName(name)
		if err != nil || n != name || n == s.origin || !dns.IsSubDomain(s.origin, n) {
			t.Fatalf("plainInZone(%q) but normalizeName gives %q, %v (in zone: %v)", name, n, err, dns.IsSubDomain(s.origin, n))
		}
	})
}
