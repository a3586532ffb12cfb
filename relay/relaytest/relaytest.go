// Package relaytest provides an in-process SMTP server (RFC 5321, with
// optional STARTTLS per RFC 3207, implicit TLS and AUTH PLAIN per RFC 4954)
// that records what it receives, for tests of code that relays mail. It
// listens on 127.0.0.1:0 and is closed by t.Cleanup.
//
// Knobs make it refuse MAIL, RCPT (per address) or DATA with a chosen
// reply, or drop the connection in the middle of the content; Restart
// closes every connection and listens again on the same address, like an
// MTA restarted while a client holds idle connections.
package relaytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	Data []byte
	// User is the AUTH identity of the session, empty without AUTH.
	User string
}

// Option configures NewServer.
type Option func(*Server)

// WithStartTLS offers STARTTLS with a self-signed certificate for
// 127.0.0.1 and localhost (trust it with Server.RootCAs).
func WithStartTLS() Option { return func(s *Server) { s.startTLS = true } }

// WithImplicitTLS makes the listener speak TLS from the first byte.
func WithImplicitTLS() Option { return func(s *Server) { s.implicitTLS = true } }

// WithAuth requires AUTH PLAIN with these credentials before MAIL; MAIL
// without it is answered 530 5.7.0. AUTH is offered without TLS too.
func WithAuth(username, password string) Option {
	return func(s *Server) { s.username, s.password = username, password }
}

// WithoutPipelining leaves PIPELINING (RFC 2920) out of the EHLO reply,
// like an MTA that does not offer it (go-smtp's server always does).
func WithoutPipelining() Option { return func(s *Server) { s.noPipelining = true } }

// WithoutChunking leaves CHUNKING (RFC 3030) out of the EHLO reply, like
// an MTA that only takes DATA (go-smtp's server always offers it).
func WithoutChunking() Option { return func(s *Server) { s.noChunking = true } }

// Server is a recording SMTP server on loopback.
type Server struct {
	// Addr is "127.0.0.1:port"; it stays the same across Restart.
	Addr string

	t                     testing.TB
	startTLS, implicitTLS bool
	noPipelining          bool
	noChunking            bool
	username, password    string
	cert                  tls.Certificate
	roots                 *x509.CertPool

	mu          sync.Mutex
	srv         *smtp.Server
	ln          net.Listener
	open        map[*recordingConn]struct{} // until go-smtp closes them
	messages    []Received
	connections int
	mailReply   *smtp.SMTPError
	rcptReplies map[string]*smtp.SMTPError
	dataReply   *smtp.SMTPError
	dropInData  bool
	mailReads   []string
}

// NewServer starts a server on 127.0.0.1:0; it stops at the end of the test.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, rcptReplies: make(map[string]*smtp.SMTPError), open: make(map[*recordingConn]struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.startTLS || s.implicitTLS {
		s.cert, s.roots = selfSigned(t)
	}
	s.listen("127.0.0.1:0")
	t.Cleanup(s.Close)
	return s
}

// RootCAs returns a pool trusting the server's certificate (nil without TLS).
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// ClientTLSConfig returns a client configuration trusting the server.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (s *Server) listen(addr string) {
	s.t.Helper()
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = "relaytest.localhost"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	if s.startTLS {
		srv.TLSConfig = tlsConfig
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("relaytest: listen %s: %v", addr, err)
	}
	cl := &countingListener{Listener: l, s: s}
	var sl net.Listener = cl
	if s.implicitTLS {
		sl = tls.NewListener(cl, tlsConfig)
	}
	s.mu.Lock()
	s.srv, s.ln = srv, cl
	s.Addr = l.Addr().String()
	s.mu.Unlock()
	go srv.Serve(sl)
}

// Restart closes the listener and every open connection, then listens
// again on the same address. Recorded messages and knobs are kept.
func (s *Server) Restart() {
	s.t.Helper()
	s.Close()
	s.listen(s.Addr)
}

// Close stops the server and closes every connection. The sockets are
// closed first and each session ends on its own goroutine: go-smtp's own
// Close of a connection in the middle of a BDAT chunk races with the
// goroutine reading the chunk.
func (s *Server) Close() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	conns := make([]*recordingConn, 0, len(s.open))
	for c := range s.open {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	ln.Close()
	for _, c := range conns {
		c.Conn.Close()
	}
	timeout := time.After(5 * time.Second)
	for _, c := range conns {
		select {
		case <-c.done:
		case <-timeout:
		}
	}
	srv.Close()
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.messages))
	copy(out, s.messages)
	return out
}

// ClearMessages forgets the recorded messages (for long benchmarks).
func (s *Server) ClearMessages() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
}

// Connections returns how many connections were accepted since start.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// SetMailReply makes MAIL answer reply (nil: accept).
func (s *Server) SetMailReply(reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailReply = reply
}

// SetRcptReply makes RCPT TO:<addr> answer reply (nil: accept).
func (s *Server) SetRcptReply(addr string, reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply == nil {
		delete(s.rcptReplies, addr)
		return
	}
	s.rcptReplies[addr] = reply
}

// SetDataReply makes the final dot answer reply (nil: accept); the
// message is then not recorded.
func (s *Server) SetDataReply(reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataReply = reply
}

// SetDropInData makes the server close the connection after reading the
// first bytes of the content, without a reply.
func (s *Server) SetDropInData(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropInData = drop
}

// MailReads returns, for each MAIL command received, the bytes of the
// read from the connection that contained it: with PIPELINING the client's
// RCPT and DATA commands arrive in the same read (one write on loopback is
// one read), without it they cannot. Not recorded after STARTTLS (the
// reads are then encrypted).
func (s *Server) MailReads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.mailReads...)
}

type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{Conn: c, s: l.s, done: make(chan struct{})}
	l.s.mu.Lock()
	l.s.connections++
	l.s.open[rc] = struct{}{}
	l.s.mu.Unlock()
	return rc, nil
}

var (
	pipeliningLine = []byte("250-PIPELINING\r\n")
	chunkingLine   = []byte("250-CHUNKING\r\n")
	mailCommand    = []byte("MAIL FROM:")
)

// recordingConn records the reads holding MAIL and, with
// WithoutPipelining and WithoutChunking, removes PIPELINING and CHUNKING
// from the EHLO reply (go-smtp writes the reply in one piece). Under implicit TLS it sits below the
// TLS layer and sees only ciphertext.
type recordingConn struct {
	net.Conn
	s    *Server
	once sync.Once
	done chan struct{} // closed by Close
}

// Close implements net.Conn; go-smtp calls it when the session ends.
func (c *recordingConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.open, c)
		c.s.mu.Unlock()
		close(c.done)
	})
	return c.Conn.Close()
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && bytes.Contains(b[:n], mailCommand) {
		c.s.mu.Lock()
		c.s.mailReads = append(c.s.mailReads, string(b[:n]))
		c.s.mu.Unlock()
	}
	return n, err
}

func (c *recordingConn) Write(b []byte) (int, error) {
	out := b
	if c.s.noPipelining && bytes.Contains(out, pipeliningLine) {
		out = bytes.Replace(out, pipeliningLine, nil, 1)
	}
	if c.s.noChunking && bytes.Contains(out, chunkingLine) {
		out = bytes.Replace(out, chunkingLine, nil, 1)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (se *session) AuthMechanisms() []string {
	if se.s.username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errors.New("identity differs from username")
		}
		if username != se.s.username || password != se.s.password {
			return smtp.ErrAuthFailed
		}
		se.user = username
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.username != "" && se.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	if se.s.mailReply != nil {
		return se.s.mailReply
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	if reply := se.s.rcptReplies[to]; reply != nil {
		return reply
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	se.s.mu.Lock()
	drop, reply := se.s.dropInData, se.s.dataReply
	se.s.mu.Unlock()
	if drop {
		var first [1]byte
		io.ReadFull(r, first[:])
		se.conn.Conn().Close()
		return errors.New("relaytest: dropped")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if reply != nil {
		return reply
	}
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	se.s.messages = append(se.s.messages, Received{From: se.from, To: se.to, Data: data, User: se.user})
	return nil
}

func (se *session) Reset() {
	se.from, se.to = "", nil
}

func (se *session) Logout() error { return nil }

// selfSigned makes an ECDSA certificate for 127.0.0.1 and localhost.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("relaytest: key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relaytest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("relaytest: certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("relaytest: parse certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
