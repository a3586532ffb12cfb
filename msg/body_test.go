package msg

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCheckBody(t *testing.T) {
	line := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name     string
		body     string
		wantText string // in the 550 5.6.0 refusal; "" = accepted
	}{
		{name: "empty", body: ""},
		{name: "CRLF lines", body: "Hello\r\n\r\nBye\r\n"},
		{name: "no final line ending", body: "Hello\r\nBye"},
		{name: "bare LF is a line ending", body: "Hello\nBye\n"},
		{name: "998 octets", body: line(998) + "\r\n"},
		{name: "998 octets, bare LF", body: line(998) + "\n"},
		{name: "998 octets at the end without CRLF", body: "x\r\n" + line(998)},
		{name: "dot-stuffed end of data look-alike with CRLF", body: "a\r\n..\r\nb\r\n"},

		{name: "999 octets", body: "x\r\n" + line(999) + "\r\n", wantText: "line 2 is 999 octets long; lines over 998 octets break DKIM"},
		{name: "999 octets, bare LF", body: line(999) + "\n", wantText: "line 1 is 999 octets long"},
		{name: "999 octets at the end", body: "x\r\n" + line(999), wantText: "line 2 is 999 octets long"},
		{name: "smuggling: CR.CR", body: "Hello\r\n\r.\rMAIL FROM:<ceo@bank.example>\r\n", wantText: "line 2 contains a bare CR"},
		{name: "bare CR before CRLF", body: "Hello\r\r\n", wantText: "line 1 contains a bare CR"},
		{name: "bare CR at the end", body: "Hello\r\nBye\r", wantText: "line 2 contains a bare CR"},
		{name: "bare CR alone", body: "\r", wantText: "line 1 contains a bare CR"},
		{name: "LF CR", body: "a\n\rb\r\n", wantText: "line 2 contains a bare CR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBody([]byte(tt.body))
			if tt.wantText == "" {
				if err != nil {
					t.Fatalf("CheckBody: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != 550 || e.Enhanced != [3]int{5, 6, 0} {
				t.Fatalf("CheckBody = %v; want a 550 5.6.0 *Error", err)
			}
			if !strings.Contains(e.Message, tt.wantText) {
				t.Errorf("refusal %q does not contain %q", e.Message, tt.wantText)
			}
		})
	}
}

// crlf turns every bare LF into CRLF, as the submission server does before
// signing.
func crlf(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func FuzzCheckBody(f *testing.F) {
	for _, s := range []string{"", "a\r\nb", "a\nb\n", "\r.\r", "a\r\r\n", strings.Repeat("x", 999), "\n\r", "\r\n\r\n.\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := CheckBody(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != 550 || e.Enhanced != [3]int{5, 6, 0} {
				t.Fatalf("CheckBody error is not a 550 5.6.0 *Error: %v", err)
			}
		}
		// The reference: split at LF, strip one CR, no CR left, no line
		// over 998 octets.
		ok := true
		lines := bytes.Split(body, []byte("\n"))
		for i, l := range lines {
			if i < len(lines)-1 { // followed by LF
				l = bytes.TrimSuffix(l, []byte("\r"))
			}
			if bytes.IndexByte(l, '\r') >= 0 || len(l) > MaxLineOctets {
				ok = false
			}
		}
		if ok != (err == nil) {
			t.Fatalf("CheckBody(%q) = %v, reference says ok=%v", body, err, ok)
		}
		// Normalizing bare LF to CRLF first changes nothing.
		if again := CheckBody(crlf(body)); (again == nil) != (err == nil) {
			t.Fatalf("CheckBody after CRLF conversion = %v, before = %v", again, err)
		}
	})
}

func BenchmarkCheckBody(b *testing.B) {
	var body bytes.Buffer
	for body.Len() < 64<<10 {
		body.WriteString("The quick brown fox jumps over the lazy dog, and then some more text to fill a line.\r\n")
	}
	data := body.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckBody(data); err != nil {
			b.Fatal(err)
		}
	}
}
