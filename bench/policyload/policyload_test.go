package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "two replies", in: "action=DUNNO\n\naction=REJECT 5.7.1 not granted\n\n", want: []string{"DUNNO", "REJECT 5.7.1 not granted"}},
		{name: "CRLF tolerated", in: "action=DUNNO\r\n\r\n", want: []string{"DUNNO"}},
		{name: "no action", in: "foo=bar\n\n", wantErr: true},
		{name: "truncated", in: "action=DUNNO\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			var got []string
			var err error
			for {
				var a string
				if a, err = readReply(r); err != nil {
					break
				}
				got = append(got, a)
			}
			if tt.wantErr != (err.Error() != "EOF") {
				t.Errorf("last error %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("replies %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	req := request("app@acme", "a@example.com")
	if !strings.HasSuffix(req, "\n\n") || strings.Count(req, "\n\n") != 1 {
		t.Fatalf("request must end with exactly one blank line: %q", req)
	}
	for _, attr := range []string{"request=smtpd_access_policy\n", "\nsender=a@example.com\n", "\nsasl_username=app@acme\n", "\nprotocol_state=RCPT\n"} {
		if !strings.Contains(req, attr) {
			t.Errorf("request lacks %q", attr)
		}
	}
}
