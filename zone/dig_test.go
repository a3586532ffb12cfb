package zone

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// digPath returns dig's path, or skips the test when dnsutils is missing
// (fails instead when CI=true).
func digPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dig (dnsutils) is required in CI: %v", err)
		}
		t.Skip("dig (dnsutils) not installed")
	}
	return path
}

func TestDig(t *testing.T) {
	dig := digPath(t)
	s := newTestServer(t, Config{AllowTransfer: []string{"127.0.0.1"}})
	port := strings.TrimPrefix(s.UDPAddr().String(), "127.0.0.1:")
	tests := []struct {
		name     string
		args     []string
		contains []string
		absent   []string
	}{
		{
			name:     "TXT over UDP, joined",
			args:     []string{"+short", dkimName, "TXT"},
			contains: []string{`"v=DKIM1; k=rsa; p=MIIB`, `" "`},
		},
		{
			name:     "flags aa and NOERROR over TCP",
			args:     []string{"+tcp", "+norecurse", bounce, "MX"},
			contains: []string{"status: NOERROR", " aa", "10 mx.sg.localhost."},
		},
		{
			name:     "NXDOMAIN with SOA",
			args:     []string{"nope.sg.localhost", "A"},
			contains: []string{"status: NXDOMAIN", "AUTHORITY SECTION", "SOA\tns1.sg.localhost. hostmaster.sg.localhost."},
		},
		{
			name:     "REFUSED outside the zone",
			args:     []string{"example.com", "A"},
			contains: []string{"status: REFUSED"},
		},
		{
			name:     "EDNS echoed",
			args:     []string{"+edns=0", "+bufsize=4096", "sg.localhost", "SOA"},
			contains: []string{"OPT PSEUDOSECTION", "udp: 1232"},
		},
		{
			name:     "AXFR",
			args:     []string{"sg.localhost", "AXFR"},
			contains: []string{"track.sg.localhost.\t300\tIN\tAAAA\t2001:db8::10", "XFR size: 9 records"},
			absent:   []string{"Transfer failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"@127.0.0.1", "-p", port, "+time=2", "+tries=1"}, tt.args...)
			out, err := exec.Command(dig, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("dig %v: %v\n%s", args, err, out)
			}
			for _, want := range tt.contains {
				if !strings.Contains(string(out), want) {
					t.Errorf("dig %v output lacks %q:\n%s", tt.args, want, out)
				}
			}
			for _, bad := range tt.absent {
				if strings.Contains(string(out), bad) {
					t.Errorf("dig %v output contains %q:\n%s", tt.args, bad, out)
				}
			}
		})
	}
}
