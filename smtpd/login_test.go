package smtpd

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// loginTestAuth accepts alice/secret and records every call.
type loginTestAuth struct {
	calls []string
	err   error // returned for wrong credentials
}

func (a *loginTestAuth) check(username, password string) error {
	a.calls = append(a.calls, username+"/"+password)
	if username == "alice" && password == "secret" {
		return nil
	}
	return a.err
}

func TestLoginServerSteps(t *testing.T) {
	errBad := errors.New("bad credentials")
	tests := []struct {
		name       string
		responses  [][]byte // nil first element = no initial response
		challenges []string // expected challenge after each response
		wantErr    error    // nil: success; errAny: any error
		wantCalls  int
	}{
		{
			name:       "without initial response",
			responses:  [][]byte{nil, []byte("alice"), []byte("secret")},
			challenges: []string{"Username:", "Password:", ""},
			wantCalls:  1,
		},
		{
			name:       "initial response is the username",
			responses:  [][]byte{[]byte("alice"), []byte("secret")},
			challenges: []string{"Password:", ""},
			wantCalls:  1,
		},
		{
			name:       "wrong password propagates the authenticator error",
			responses:  [][]byte{[]byte("alice"), []byte("nope")},
			challenges: []string{"Password:", ""},
			wantErr:    errBad,
			wantCalls:  1,
		},
		{
			name:       "empty initial response refused",
			responses:  [][]byte{{}},
			challenges: []string{""},
			wantErr:    errAny,
		},
		{
			name:       "empty username after challenge refused",
			responses:  [][]byte{nil, {}},
			challenges: []string{"Username:", ""},
			wantErr:    errAny,
		},
		{
			name:       "empty password is the authenticator's decision",
			responses:  [][]byte{nil, []byte("alice"), {}},
			challenges: []string{"Username:", "Password:", ""},
			wantErr:    errBad,
			wantCalls:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &loginTestAuth{err: errBad}
			s := NewLoginServer(a.check)
			var err error
			for i, resp := range tt.responses {
				var ch []byte
				var done bool
				ch, done, err = s.Next(resp)
				last := i == len(tt.responses)-1
				if done != last {
					t.Fatalf("step %d: done = %v, want %v", i, done, last)
				}
				if string(ch) != tt.challenges[i] {
					t.Fatalf("step %d: challenge %q, want %q", i, ch, tt.challenges[i])
				}
				if !last && err != nil {
					t.Fatalf("step %d: unexpected error %v", i, err)
				}
			}
			checkLoginErr(t, err, tt.wantErr)
			if len(a.calls) != tt.wantCalls {
				t.Errorf("authenticator called %d times (%v), want %d", len(a.calls), a.calls, tt.wantCalls)
			}
			if _, _, err := s.Next([]byte("more")); err == nil {
				t.Error("Next after the exchange ended: want an error")
			}
		})
	}
}

// errAny marks a test case that expects some error.
var errAny = errors.New("any error")

func checkLoginErr(t *testing.T, got, want error) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Fatalf("error %v, want success", got)
	case want == errAny && got == nil, want != nil && want != errAny && got != want:
		t.Fatalf("error %v, want %v", got, want)
	}
}

func TestLoginServerWithGoSASLClient(t *testing.T) {
	errBad := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad"}
	tests := []struct {
		name, username, password string
		wantErr                  error
	}{
		{name: "good credentials", username: "alice", password: "secret"},
		{name: "bad password", username: "alice", password: "wrong", wantErr: errBad},
		{name: "unknown user", username: "bob", password: "secret", wantErr: errBad},
		{name: "empty username", username: "", password: "secret", wantErr: errAny},
		{name: "non-ASCII password", username: "alice", password: "sécret", wantErr: errBad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &loginTestAuth{err: errBad}
			err := runSASL(t, sasl.NewLoginClient(tt.username, tt.password), NewLoginServer(a.check))
			checkLoginErr(t, err, tt.wantErr)
			if tt.username == "" && len(a.calls) != 0 {
				t.Errorf("authenticator called for an empty username: %v", a.calls)
			}
		})
	}
}

// runSASL drives a client and a server against each other as go-smtp does
// and returns the server's final error.
func runSASL(t *testing.T, c sasl.Client, s sasl.Server) error {
	t.Helper()
	mech, resp, err := c.Start()
	if err != nil || mech != sasl.Login {
		t.Fatalf("client Start: mech %q, err %v", mech, err)
	}
	for i := 0; i < 10; i++ {
		ch, done, err := s.Next(resp)
		if err != nil || done {
			return err
		}
		if resp, err = c.Next(ch); err != nil {
			t.Fatalf("client rejected challenge %q: %v", ch, err)
		}
	}
	t.Fatal("exchange did not finish in 10 steps")
	return nil
}

// loginTestSession is a go-smtp session that offers only LOGIN.
type loginTestSession struct{ auth LoginAuthenticator }

func (s *loginTestSession) AuthMechanisms() []string { return []string{sasl.Login} }
func (s *loginTestSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Login {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return NewLoginServer(s.auth), nil
}
func (s *loginTestSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *loginTestSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *loginTestSession) Data(io.Reader) error                 { return nil }
func (s *loginTestSession) Reset()                               {}
func (s *loginTestSession) Logout() error                        { return nil }

// loginTestServer starts a go-smtp server on 127.0.0.1:0 using auth.
func loginTestServer(t *testing.T, auth LoginAuthenticator) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &loginTestSession{auth: auth}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func TestLoginServerOverSMTP(t *testing.T) {
	errBad := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	addr := loginTestServer(t, func(u, p string) error {
		if u == "alice" && p == "secret" {
			return nil
		}
		return errBad
	})

	t.Run("go-smtp client", func(t *testing.T) {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewLoginClient("alice", "secret")); err != nil {
			t.Fatalf("Auth: %v", err)
		}
	})
	t.Run("bad password answers 535 5.7.8", func(t *testing.T) {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Auth(sasl.NewLoginClient("alice", "wrong"))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
			t.Fatalf("Auth error %v, want 535 5.7.8", err)
		}
	})
	t.Run("raw AUTH LOGIN without initial response", func(t *testing.T) {
		b64 := base64.StdEncoding.EncodeToString
		lines := loginDialog(t, addr, "EHLO client", "AUTH LOGIN", b64([]byte("alice")), b64([]byte("secret")))
		want := []string{"334 " + b64([]byte("Username:")), "334 " + b64([]byte("Password:")), "235 2.0.0"}
		for i, w := range want {
			if !strings.HasPrefix(lines[i+1], w) {
				t.Errorf("reply %d = %q, want prefix %q", i+1, lines[i+1], w)
			}
		}
	})
}

// loginDialog sends each command and returns the last line of each reply.
func loginDialog(t *testing.T, addr string, cmds ...string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	readReply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimRight(line, "\r\n")
			}
		}
	}
	readReply() // greeting
	var replies []string
	for _, c := range cmds {
		if _, err := io.WriteString(conn, c+"\r\n"); err != nil {
			t.Fatal(err)
		}
		replies = append(replies, readReply())
	}
	return replies
}
