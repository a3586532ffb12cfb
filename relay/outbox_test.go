package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/relay"
)

func TestOutboxWritesMessageWithEnvelope(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	o, err := relay.NewOutbox(dir)
	if err != nil {
		t.Fatalf("NewOutbox: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("outbox mode = %o, want 700", perm)
	}

	tests := []struct {
		name     string
		m        *relay.Message
		envelope string
	}{
		{
			name: "two recipients",
			m:    testMessage("msg-1", "b@example.net", "c@example.org"),
			envelope: "X-Sendergate-Envelope-From: <bounce+msg-1@rp.example.com>\r\n" +
				"X-Sendergate-Envelope-To: <b@example.net>\r\n" +
				"X-Sendergate-Envelope-To: <c@example.org>\r\n",
		},
		{
			name: "null sender",
			m: func() *relay.Message {
				m := testMessage("msg-2", "b@example.net")
				m.From = ""
				return m
			}(),
			envelope: "X-Sendergate-Envelope-From: <>\r\nX-Sendergate-Envelope-To: <b@example.net>\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := o.Send(context.Background(), tt.m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.m.ID+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte(tt.envelope), flat(tt.m.Data)...)
			if !bytes.Equal(got, want) {
				t.Errorf("file content:\n got %q\nwant %q", got, want)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[msg-1.eml msg-2.eml]" {
		t.Errorf("outbox holds %v, want only the two .eml files (no temp leftovers)", names)
	}
}

func TestOutboxIgnoresCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	o, err := relay.NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A crash between create and rename leaves a partial temp file.
	partial := filepath.Join(dir, relay.OutboxTempPrefix("crashed")+"123456.tmp")
	if err := os.WriteFile(partial, []byte("X-Sendergate-Envelope-From: <a@b>\r\nSubj"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), testMessage("ok", "b@example.net")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	emls, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(emls) != 1 || filepath.Base(emls[0]) != "ok.eml" {
		t.Errorf("*.eml matches %v, want only ok.eml (never the crashed temp file)", emls)
	}
}

func TestOutboxErrors(t *testing.T) {
	tests := []struct {
		name string
		prep func(t *testing.T, dir string)
		m    *relay.Message
		code int
		ec   smtp.EnhancedCode
	}{
		{
			name: "directory removed",
			prep: func(t *testing.T, dir string) {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			},
			m: testMessage("gone", "b@example.net"), code: 451, ec: smtp.EnhancedCode{4, 3, 0},
		},
		{
			name: "path in ID",
			prep: func(*testing.T, string) {},
			m:    testMessage("../escape", "b@example.net"), code: 554, ec: smtp.EnhancedCode{5, 5, 4},
		},
		{
			name: "no recipients",
			prep: func(*testing.T, string) {},
			m:    testMessage("lonely"), code: 554, ec: smtp.EnhancedCode{5, 5, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "outbox")
			o, err := relay.NewOutbox(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.prep(t, dir)
			e := smtpErr(t, o.Send(context.Background(), tt.m))
			if e.Code != tt.code || e.EnhancedCode != tt.ec {
				t.Errorf("Send error = %d %v, want %d %v", e.Code, e.EnhancedCode, tt.code, tt.ec)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.eml")); err == nil {
				t.Error("a file was written outside the outbox")
			}
		})
	}
}

func TestOutboxConcurrentSends(t *testing.T) {
	dir := t.TempDir()
	o, err := relay.NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = o.Send(context.Background(), testMessage(fmt.Sprint("c", i), "b@example.net")) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Send %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("outbox holds %d files, want %d", len(entries), n)
	}
}
