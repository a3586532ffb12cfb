package main

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testBackend is a real go-smtp server's backend: AUTH PLAIN with one
// user, MAIL from "refused@example.com" refused with 550 5.7.1.
type testBackend struct{ msgs atomic.Int64 }

func (b *testBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &testSession{b: b}, nil }

type testSession struct {
	b    *testBackend
	auth bool
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "u" || pass != "p" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad"}
		}
		s.auth = true
		return nil
	}), nil
}

func (s *testSession) Reset()        {}
func (s *testSession) Logout() error { return nil }
func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if from == "refused@example.com" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no"}
	}
	return nil
}
func (s *testSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *testSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.b.msgs.Add(1)
	return nil
}

func startServer(t *testing.T) (string, *testBackend) {
	t.Helper()
	be := &testBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "test.localhost"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), be
}

func TestExecute(t *testing.T) {
	addr, be := startServer(t)
	tests := []struct {
		name           string
		conns, perConn int
		total          int
		user, pass     string
		from           string
		pipeline       bool
		wantOK         int
		wantConns      int
		wantErrs       map[string]int
	}{
		{name: "pooled", conns: 4, perConn: 5, total: 40, from: "a@example.com", wantOK: 40, wantConns: 8},
		{name: "one per connection with AUTH", conns: 3, perConn: 1, total: 9, user: "u", pass: "p", from: "a@example.com", wantOK: 9, wantConns: 9},
		{name: "refused sender", conns: 2, perConn: 3, total: 6, from: "refused@example.com", wantConns: 2, wantErrs: map[string]int{"550 5.7.1": 6}},
		{name: "bad password", conns: 1, perConn: 1, total: 2, user: "u", pass: "x", from: "a@example.com", wantErrs: map[string]int{"535 5.7.8": 2}},
		{name: "pipelined", conns: 4, perConn: 5, total: 40, from: "a@example.com", pipeline: true, wantOK: 40, wantConns: 8},
		{name: "pipelined with AUTH", conns: 3, perConn: 1, total: 9, user: "u", pass: "p", from: "a@example.com", pipeline: true, wantOK: 9, wantConns: 9},
		{name: "pipelined, refused sender", conns: 2, perConn: 3, total: 6, from: "refused@example.com", pipeline: true, wantConns: 2, wantErrs: map[string]int{"550 5.7.1": 6}},
		{name: "pipelined, bad password", conns: 1, perConn: 1, total: 2, user: "u", pass: "x", from: "a@example.com", pipeline: true, wantErrs: map[string]int{"535 5.7.8": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := be.msgs.Load()
			o := options{addr: addr, conns: tt.conns, perConn: tt.perConn, total: tt.total, maxTime: time.Minute,
				size: 2048, user: tt.user, pass: tt.pass, from: tt.from, to: "r@example.net", opTimeout: 10 * time.Second,
				pipeline: tt.pipeline}
			res, err := execute(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.msg) != tt.wantOK || int(be.msgs.Load()-before) != tt.wantOK {
				t.Errorf("ok = %d, server got %d, want %d", len(res.msg), be.msgs.Load()-before, tt.wantOK)
			}
			if res.conns != tt.wantConns {
				t.Errorf("connections = %d, want %d", res.conns, tt.wantConns)
			}
			if len(res.errs) != len(tt.wantErrs) {
				t.Errorf("errors = %v, want %v", res.errs, tt.wantErrs)
			}
			for k, v := range tt.wantErrs {
				if res.errs[k] != v {
					t.Errorf("errors = %v, want %v", res.errs, tt.wantErrs)
				}
			}
			if tt.perConn == 1 && len(res.total) != tt.wantOK {
				t.Errorf("total latencies = %d, want one per message", len(res.total))
			}
		})
	}
}

func TestBuildBodySize(t *testing.T) {
	for _, size := range []int{256, 1000, 10 << 10, 100 << 10} {
		o := options{size: size, from: "a@example.com", to: "b@example.net"}
		body := buildBody(o)
		id := "Message-ID: <1234567.1234567@loadgen.localhost>\r\n"
		if got := len(id) + len(body); got != size {
			t.Errorf("size %d: message is %d bytes", size, got)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantErr   bool
		wantTotal int
	}{
		{name: "defaults", args: nil, wantTotal: 400},
		{name: "duration leaves n open", args: []string{"-duration", "1s"}, wantTotal: 0},
		{name: "remote target refused", args: []string{"-addr", "192.0.2.1:25"}, wantErr: true},
		{name: "zero connections", args: []string{"-c", "0"}, wantErr: true},
		{name: "bad format", args: []string{"-format", "json"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && o.total != tt.wantTotal {
				t.Errorf("total = %d, want %d", o.total, tt.wantTotal)
			}
		})
	}
}

func TestErrKey(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "smtp reply", err: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}}, want: "451 4.4.1"},
		{name: "wrapped reply", err: errors.Join(errors.New("auth"), &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}}), want: "535 5.7.8"},
		{name: "transport", err: io.ErrUnexpectedEOF, want: "net"},
	}
	for _, tt := range tests {
		if got := errKey(tt.err); got != tt.want {
			t.Errorf("%s: errKey = %q, want %q", tt.name, got, tt.want)
		}
	}
}
