package gatelisten

import (
	"net/netip"
	"testing"
)

func TestParsePeers(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "127.0.0.1", want: "127.0.0.1/32"},
		{in: "::1", want: "::1/128"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "2001:db8::1/32", want: "2001:db8::/32"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{in: "fe80::1%eth0", want: "fe80::1/128"},
		{in: "localhost", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePeers([]string{tt.in})
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParsePeers(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].String() != tt.want {
			t.Errorf("ParsePeers(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestAdmitted(t *testing.T) {
	peers, err := ParsePeers([]string{"127.0.0.1", "::1", "192.0.2.0/24", "fe80::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{addr: "127.0.0.1", want: true},
		{addr: "::ffff:127.0.0.1", want: true}, // a dual-stack socket's view of an IPv4 peer
		{addr: "::1", want: true},
		{addr: "192.0.2.200", want: true},
		{addr: "::ffff:192.0.2.200", want: true},
		{addr: "127.0.0.2", want: false},
		{addr: "::ffff:127.0.0.2", want: false},
		{addr: "192.0.3.1", want: false},
		{addr: "::2", want: false},
		{addr: "fe80::1%lo", want: true}, // the zone does not hide the address
		{addr: "fe80::2%lo", want: false},
	}
	for _, tt := range tests {
		if got := admitted(peers, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("admitted(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if admitted(peers, netip.Addr{}) {
		t.Error("a connection without an IP address (not TCP) was admitted")
	}
	if admitted(nil, netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty peers list admitted a connection; it must admit none")
	}
}
