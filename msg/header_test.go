package msg

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readHeaderString(t testing.TB, s string) (*Header, string, error) {
	t.Helper()
	r := bufio.NewReader(strings.NewReader(s))
	h, err := ReadHeader(r)
	rest, rerr := io.ReadAll(r)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return h, string(rest), err
}

func TestReadHeader(t *testing.T) {
	long := func(n int) string { return "X-Long: " + strings.Repeat("a", n-len("X-Long: ")) }
	tests := []struct {
		name       string
		in         string
		wantFields []string // Raw of each field
		wantBody   string
		wantErr    error // matched with errors.Is; nil = success
		wantCode   int   // *Error code when wantErr is nil but an *Error is expected
	}{
		{
			name:       "folding preserved byte-exact",
			in:         "From: a@b.example\r\nSubject: one\r\n two\r\n\tthree  \r\nTo: c@d.example\r\n\r\nbody\r\n",
			wantFields: []string{"From: a@b.example\r\n", "Subject: one\r\n two\r\n\tthree  \r\n", "To: c@d.example\r\n"},
			wantBody:   "body\r\n",
		},
		{
			name:       "LF input normalised to CRLF, body untouched",
			in:         "From: a@b.example\nSubject: x\n y\n\nbody\nline\n",
			wantFields: []string{"From: a@b.example\r\n", "Subject: x\r\n y\r\n"},
			wantBody:   "body\nline\n",
		},
		{
			name:       "no blank line: all header",
			in:         "From: a@b.example\r\nSubject: x",
			wantFields: []string{"From: a@b.example\r\n", "Subject: x\r\n"},
		},
		{
			name:       "empty header",
			in:         "\r\nbody",
			wantFields: nil,
			wantBody:   "body",
		},
		{
			name:       "998 octets accepted",
			in:         long(998) + "\r\n\r\n",
			wantFields: []string{long(998) + "\r\n"},
		},
		{
			name:       "998 octets accepted without line ending",
			in:         long(998),
			wantFields: []string{long(998) + "\r\n"},
		},
		{name: "999 octets refused", in: long(999) + "\r\n\r\n", wantErr: ErrLineTooLong},
		{name: "999 octets refused with LF", in: long(999) + "\n\n", wantErr: ErrLineTooLong},
		{name: "999 octets refused at end of input", in: long(999), wantErr: ErrLineTooLong},
		{name: "long continuation line refused", in: "Subject: x\r\n " + strings.Repeat("b", 998) + "\r\n\r\n", wantErr: ErrLineTooLong},
		{name: "huge header refused", in: strings.Repeat("X-A: "+strings.Repeat("a", 900)+"\r\n", 1200), wantErr: ErrHeaderTooLarge},
		{name: "line without colon refused", in: "From: a@b.example\r\nhello world\r\n\r\n", wantCode: 550},
		{name: "leading continuation refused", in: " From: a@b.example\r\n\r\n", wantCode: 550},
		{name: "bare CR refused", in: "From: a@b.example\rFrom: c@d.example\r\n\r\n", wantCode: 550},
		{name: "CR CR LF refused", in: "From: a@b.example\r\r\n\r\n", wantCode: 550},
		{name: "NUL refused", in: "Subject: a\x00b\r\n\r\n", wantCode: 550},
		{name: "empty field name refused", in: ": x\r\n\r\n", wantCode: 550},
		{
			name:       "space before colon is part of the syntax, not the name",
			in:         "From : a@b.example\r\n\r\n",
			wantFields: []string{"From : a@b.example\r\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body, err := readHeaderString(t, tt.in)
			if tt.wantErr != nil || tt.wantCode != 0 {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v, want an *Error", err)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if tt.wantCode != 0 && e.Code != tt.wantCode {
					t.Fatalf("code %d, want %d", e.Code, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			var got []string
			for _, f := range h.Fields {
				got = append(got, string(f.Raw))
			}
			if strings.Join(got, "|") != strings.Join(tt.wantFields, "|") {
				t.Errorf("fields %q, want %q", got, tt.wantFields)
			}
			if body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestHeaderNamesAndGet(t *testing.T) {
	h, _, err := readHeaderString(t, "FROM : a@b.example\r\nSubject:  folded\r\n  value \r\nfrom: c@d.example\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if h.Fields[0].Name != "FROM" {
		t.Errorf("name %q, want FROM", h.Fields[0].Name)
	}
	tests := []struct {
		name string
		want []string
	}{
		{name: "From", want: []string{"a@b.example", "c@d.example"}},
		{name: "subject", want: []string{"folded  value"}},
		{name: "To", want: nil},
	}
	for _, tt := range tests {
		var got []string
		for _, v := range h.Get(tt.name) {
			got = append(got, string(v))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Get(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHeaderEditAndWrite(t *testing.T) {
	h, _, err := readHeaderString(t, "Return-Path: <x@y>\r\nFrom: a@b.example\r\nreturn-PATH: <z@y>\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	h.Del("Return-Path")
	h.Add("X-Injected", "a\r\nBcc: victim@example.com")
	h.Add("X-Long", strings.Repeat("word ", 40)+"end")
	h.Prepend([]byte("Received: from x by y; date"))
	var buf bytes.Buffer
	n, err := h.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) || h.Size() != buf.Len() {
		t.Fatalf("WriteTo = %d, %v; wrote %d; Size = %d", n, err, buf.Len(), h.Size())
	}
	out := buf.String()
	if !strings.HasPrefix(out, "Received: from x by y; date\r\nFrom: a@b.example\r\nX-Injected: a  Bcc: victim@example.com\r\n") {
		t.Errorf("unexpected output:\n%s", out)
	}
	if !strings.HasSuffix(out, "end\r\n\r\n") {
		t.Errorf("output does not end with the last field and an empty line:\n%q", out)
	}
	// Reading the output back gives the same fields, and folded lines stay short.
	h2, _, err := readHeaderString(t, out)
	if err != nil || len(h2.Fields) != len(h.Fields) {
		t.Fatalf("re-read: %v, %d fields, want %d", err, len(h2.Fields), len(h.Fields))
	}
	for _, line := range strings.Split(out, "\r\n") {
		if len(line) > foldWidth {
			t.Errorf("line of %d octets not folded: %q", len(line), line)
		}
	}
	if got := string(h2.Get("X-Long")[0]); got != strings.Repeat("word ", 40)+"end" {
		t.Errorf("unfolded X-Long = %q", got)
	}
}
