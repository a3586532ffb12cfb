package msg

import (
	"bytes"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPrepare(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	trace := TraceInfo{
		Helo: "client.example", RemoteIP: "192.0.2.7", ID: "abc123", Protocol: "ESMTPSA",
		Recipients: []string{"bob@example.org"},
	}
	tests := []struct {
		name          string
		header        string
		trace         TraceInfo
		wantMessageID string // "" = a generated one
		wantDate      string
		wantReceived  string
	}{
		{
			name:     "adds Message-ID and Date, removes every Return-Path",
			header:   "Return-Path: <a@x>\r\nFrom: a@example.com\r\nRETURN-path: <b@x>\r\nreturn-path : <c@x>\r\n",
			trace:    trace,
			wantDate: "Tue, 04 Mar 2025 05:06:07 +0000",
			wantReceived: "Received: from client.example ([192.0.2.7])\r\n\tby mx.sg.example with ESMTPSA id abc123\r\n" +
				"\tfor <bob@example.org>;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n",
		},
		{
			name:          "keeps existing Message-ID and Date",
			header:        "From: a@example.com\r\nmessage-id: <keep@client>\r\nDATE: Mon, 03 Mar 2025 01:02:03 +0100\r\n",
			trace:         TraceInfo{Helo: "c", RemoteIP: "2001:db8::1", ID: "x", Protocol: "ESMTPA", Recipients: []string{"a@x", "b@x"}, Time: now.Add(time.Hour)},
			wantMessageID: "<keep@client>",
			wantDate:      "Mon, 03 Mar 2025 01:02:03 +0100",
			wantReceived:  "Received: from c ([IPv6:2001:db8::1])\r\n\tby mx.sg.example with ESMTPA id x;\r\n\tTue, 04 Mar 2025 06:06:07 +0000\r\n",
		},
		{
			name:         "client text cannot break the trace field",
			header:       "From: a@example.com\r\n",
			trace:        TraceInfo{Helo: "evil (x);\r\nBcc: y", RemoteIP: "not-an-ip", Recipients: []string{"a>b@x"}},
			wantDate:     "Tue, 04 Mar 2025 05:06:07 +0000",
			wantReceived: "Received: from evil??x????Bcc:?y\r\n\tby mx.sg.example with ESMTP\r\n\tfor <a?b@x>;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := readHeaderString(t, tt.header+"\r\n")
			if err != nil {
				t.Fatal(err)
			}
			Prepare(h, "mx.sg.example", tt.trace, now)
			if got := h.Get("Return-Path"); len(got) != 0 {
				t.Errorf("Return-Path left: %q", got)
			}
			if got := string(h.Fields[0].Raw); got != tt.wantReceived {
				t.Errorf("first field\n%q\nwant\n%q", got, tt.wantReceived)
			}
			ids := h.Get("Message-ID")
			if len(ids) != 1 {
				t.Fatalf("Message-ID fields %q, want one", ids)
			}
			if tt.wantMessageID != "" && string(ids[0]) != tt.wantMessageID {
				t.Errorf("Message-ID %q, want %q", ids[0], tt.wantMessageID)
			}
			if tt.wantMessageID == "" && !regexp.MustCompile(`^<[a-z0-9]{20,}@mx\.sg\.example>$`).Match(ids[0]) {
				t.Errorf("generated Message-ID %q", ids[0])
			}
			dates := h.Get("Date")
			if len(dates) != 1 || string(dates[0]) != tt.wantDate {
				t.Errorf("Date %q, want [%q]", dates, tt.wantDate)
			}
			if _, err := mail.ParseDate(string(dates[0])); err != nil {
				t.Errorf("Date does not parse: %v", err)
			}
			var buf bytes.Buffer
			if _, err := h.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if h2, _, err := readHeaderString(t, buf.String()); err != nil || len(h2.Fields) != len(h.Fields) {
				t.Errorf("prepared header does not read back: %v", err)
			}
		})
	}
}

func TestPrepareMessageIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		h := &Header{}
		Prepare(h, "", TraceInfo{}, time.Now())
		id := string(h.Get("Message-ID")[0])
		if seen[id] || !strings.HasSuffix(id, "@localhost>") {
			t.Fatalf("Message-ID %q repeated or without default host", id)
		}
		seen[id] = true
	}
}
