package bounce

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSamples(t *testing.T) {
	tests := []struct {
		file       string
		kind       Kind
		addr       string
		status     string
		diagPart   string
		feedback   string
		originalID string
	}{
		{file: "postfix.eml", kind: Hard, addr: "nobody@example.net", status: "5.1.1", diagPart: "User unknown", originalID: "orig-1@mailing.example.com"},
		// An alias forwarded info@ to nobody@: the address sent to is
		// what gets suppressed.
		{file: "forwarded.eml", kind: Hard, addr: "info@example.net", status: "5.1.1", diagPart: "User unknown", originalID: "orig-1@mailing.example.com"},
		{file: "delayed.eml", kind: Soft, addr: "slow@example.org", status: "4.4.1", diagPart: "timed out"},
		{file: "gmail.eml", kind: Hard, addr: "someone@gmail.com", status: "5.1.1", diagPart: "does not exist", originalID: "orig-2@mailing.example.com"},
		{file: "arf.eml", kind: Complaint, addr: "user@example.com", feedback: "abuse", originalID: "8787KJKJ3K4J3K4J3K4J3.mail@example.net"},
		{file: "exim.eml", kind: Hard, addr: "gone@example.org", status: "5.1.1", diagPart: "user unknown"},
		{file: "mailboxfull.eml", kind: Soft, addr: "full@example.com", status: "4.2.2"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Kind != tt.kind || rep.FeedbackType != tt.feedback || rep.OriginalMessageID != tt.originalID {
				t.Fatalf("got %+v", rep)
			}
			if len(rep.Recipients) != 1 {
				t.Fatalf("recipients %+v", rep.Recipients)
			}
			r := rep.Recipients[0]
			if r.Address != tt.addr || r.Status != tt.status || !strings.Contains(r.Diagnostic, tt.diagPart) {
				t.Fatalf("recipient %+v", r)
			}
		})
	}
}

func TestParseUnknown(t *testing.T) {
	rep, err := Parse(strings.NewReader("Subject: hello\r\n\r\nJust a reply, thanks!\r\n"))
	if err != nil || rep.Kind != Unknown || len(rep.Recipients) != 0 {
		t.Fatalf("got %+v, %v", rep, err)
	}
	if _, err := Parse(strings.NewReader("not a header")); err == nil {
		t.Fatal("no error for a message without a header")
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data))
		if err == nil && len(rep.Recipients) > maxRecipients+1 {
			t.Fatalf("%d recipients", len(rep.Recipients))
		}
	})
}
