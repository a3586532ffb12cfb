package loopback

import "testing"

func TestCheck(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{addr: "127.0.0.1:25", ok: true},
		{addr: "[::1]:25", ok: true},
		{addr: "localhost:25", ok: true},
		{addr: "10.0.0.1:25"},
		{addr: "192.0.2.1:25"},
		{addr: "no-port"},
	}
	for _, tt := range tests {
		if err := Check(tt.addr); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}
