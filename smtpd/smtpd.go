// Package smtpd is sendergate's message submission front end (RFC 6409) on
// go-smtp: ESMTP (RFC 5321) with STARTTLS (RFC 3207) or implicit TLS
// (RFC 8314), AUTH PLAIN (RFC 4954, RFC 4616) and LOGIN, SIZE (RFC 1870)
// and enhanced status codes (RFC 3463).
//
// Each message received is handed to the message stage (Config.Gate),
// which decides, prepares and signs it, and is then given to the relay
// before the client gets any reply: the client's 250 is the upstream's
// 250, and any other upstream verdict is passed on unchanged.
//
// The server defends itself before and around the SMTP dialogue:
//
//   - connections are admitted by its own listener (conns.go): a trusted
//     proxy's PROXY protocol header (v1 or v2) gives the client's real
//     address, used for every limit, the logs and the Received field;
//     past MaxConnections or MaxConnectionsPerIP the greeting is
//     421 4.7.0 and the connection is closed;
//   - every read has its own deadline: ReadTimeout per read, PreAuthTimeout
//     before AUTH and IdleTimeout after it, counted since the last command
//     that made progress (AUTH, MAIL, RCPT, DATA, STARTTLS; not NOOP, RSET,
//     HELP or EHLO), then 421 4.4.2; DATA may take at most MaxDataTime;
//   - message buffers grow with the data received, never from a declared
//     SIZE, and the bytes all transactions hold are capped daemon-wide by
//     MaxBufferedBytes (451 4.3.1 past it);
//   - message lines of any length are read (the message stage judges
//     them); outside DATA at most maxCommandBytes without progress.
//
// Every reply a session method returns is a bare *smtp.SMTPError from a
// named constructor (replies.go), because go-smtp recognises replies by
// type assertion and answers anything else with a permanent 554.
package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxMessageBytes = 25 << 20 // submission.max_message_bytes
	DefaultMaxRecipients   = 100      // submission.max_recipients
	// DefaultReadTimeout is the server timeout of RFC 5321 4.5.3.2.7 for
	// waiting on the next command. While a message is received it is a
	// sliding deadline renewed on every read, so it bounds a stalled
	// client (like the 3-minute data block timeout of 4.5.3.2.5), not the
	// time to receive a large message.
	DefaultReadTimeout = 5 * time.Minute
	// DefaultWriteTimeout bounds writing one reply. RFC 5321 sets no
	// server-side write timeout; a client that does not read a short reply
	// within a minute is gone.
	DefaultWriteTimeout = time.Minute
	// DefaultPreAuthTimeout is how long a connection may go without
	// authenticating (or making other progress: STARTTLS): a minute is
	// plenty for a client that means to send.
	DefaultPreAuthTimeout = time.Minute
	// DefaultIdleTimeout is how long an authenticated connection may go
	// without a mail command (MAIL, RCPT, DATA); NOOP and RSET do not
	// count, so a keep-alive cannot hold a connection forever.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxDataTime bounds one message transfer, however steadily
	// the data trickles in: 25 MiB in 30 minutes is under 15 KiB/s.
	DefaultMaxDataTime = 30 * time.Minute
	// DefaultMaxConnections, DefaultMaxConnectionsPerIP and
	// DefaultMaxBufferedBytes are submission.max_connections,
	// max_connections_per_ip and max_buffered_bytes.
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 50
	DefaultMaxBufferedBytes    = 256 << 20
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// Hostname is the greeting name and the "by" of Received fields.
	Hostname string
	// Listen and ListenTLS are the STARTTLS and implicit-TLS addresses of
	// ListenAndServe; ListenTLS may be empty (off).
	Listen, ListenTLS string
	// TLSConfig serves STARTTLS and implicit TLS; nil offers neither.
	TLSConfig *tls.Config
	// AllowInsecureAuth offers AUTH on plaintext connections from any
	// address (submission.allow_insecure_auth).
	AllowInsecureAuth bool
	// TrustedNet reports whether plaintext AUTH is allowed from ip anyway;
	// nil means loopback addresses only.
	TrustedNet func(ip net.IP) bool
	// MaxMessageBytes limits the message size (552 5.3.4 beyond it): the
	// octets of the message as received, after dot-unstuffing, CRLFs
	// included, the final "." line not (RFC 1870's count). A message of
	// exactly MaxMessageBytes is accepted.
	MaxMessageBytes int64
	// MaxRecipients limits RCPT per transaction (452 4.5.3 beyond it).
	MaxRecipients int
	// ReadTimeout and WriteTimeout: see DefaultReadTimeout.
	ReadTimeout, WriteTimeout time.Duration
	// PreAuthTimeout and IdleTimeout are the idle limits before and after
	// AUTH, counted since the last command that made progress; past them
	// the connection gets 421 4.4.2 and is closed. See
	// DefaultPreAuthTimeout.
	PreAuthTimeout, IdleTimeout time.Duration
	// MaxDataTime bounds one DATA (or BDAT) transfer from its start
	// (421 4.4.2 and close past it).
	MaxDataTime time.Duration
	// MaxConnections and MaxConnectionsPerIP bound open connections, in
	// total and per client address (IPv4 address, IPv6 /64); past either
	// the greeting is 421 4.7.0 and the connection is closed.
	MaxConnections, MaxConnectionsPerIP int
	// MaxBufferedBytes bounds the message bytes all transactions hold at
	// once; a message that would pass it gets 451 4.3.1. It is raised to
	// MaxMessageBytes + 64 KiB if lower, so that one message of the
	// largest size always fits.
	MaxBufferedBytes int64
	// ProxyFrom lists the IPs and CIDR prefixes of proxies (load
	// balancers) that must start each connection with a PROXY protocol v1
	// or v2 header; empty: PROXY protocol off. Connections from other
	// addresses are direct clients, whatever they send.
	ProxyFrom []string
	// Logger receives one line per transaction; nil discards.
	Logger *slog.Logger
	// Registerer receives the sendergate_smtpd_* metrics; nil: none.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Gate is the message stage every received message goes through
	// (required): it decides, prepares, signs and names the bounce address.
	Gate Stage
}

// Policy is what the server asks about accounts and authors;
// *policy.Engine implements it.
type Policy interface {
	// Current returns the snapshot to authenticate against, or an error
	// (policy.ErrNotReady) when none is loaded.
	Current() (*policy.Snapshot, error)
}

var _ Policy = (*policy.Engine)(nil)

// Server is the submission server. Create it with New.
type Server struct {
	cfg     Config
	pol     Policy
	out     relay.Sender
	log     *slog.Logger
	smtp    *smtp.Server
	pipe    *pipeline
	limiter *authLimiter
	metrics *metrics
	// ctx is passed to the policy and the relay; it is cancelled only when
	// Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	proxy    proxyTrust
	counter  *connCounter
	bufs     *buffers
	refusing chan struct{} // refusals in progress, at most maxRefusing

	closing   atomic.Bool
	mu        sync.Mutex
	addr      net.Addr
	tlsAddr   net.Addr
	conns     map[*trackedConn]struct{}
	listeners []net.Listener
}

// New returns a server relaying accepted mail to out.
func New(cfg Config, pol Policy, out relay.Sender) (*Server, error) {
	if pol == nil || out == nil || cfg.Gate == nil {
		return nil, errors.New("smtpd: a policy, a message stage (Config.Gate) and a relay are required")
	}
	if cfg.ListenTLS != "" && cfg.TLSConfig == nil {
		return nil, errors.New("smtpd: implicit TLS listener configured without a TLS configuration")
	}
	cfg = withDefaults(cfg)
	proxy, err := parseProxyFrom(cfg.ProxyFrom)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, pol: pol, out: out, log: cfg.Logger,
		pipe:     &pipeline{stage: cfg.Gate},
		limiter:  newAuthLimiter(cfg.Now),
		proxy:    proxy,
		counter:  newConnCounter(cfg.MaxConnections, cfg.MaxConnectionsPerIP),
		bufs:     &buffers{max: cfg.MaxBufferedBytes},
		refusing: make(chan struct{}, maxRefusing),
		conns:    make(map[*trackedConn]struct{}),
	}
	if s.metrics, err = newMetrics(cfg.Registerer, s); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.smtp = newSMTPServer(cfg, s)
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.PreAuthTimeout <= 0 {
		cfg.PreAuthTimeout = DefaultPreAuthTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDataTime <= 0 {
		cfg.MaxDataTime = DefaultMaxDataTime
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	// One message of the largest size must always fit (buffers grow in
	// chunks and hold one octet over the limit to detect it).
	cfg.MaxBufferedBytes = max(cfg.MaxBufferedBytes, cfg.MaxMessageBytes+readChunk)
	if cfg.TrustedNet == nil {
		cfg.TrustedNet = net.IP.IsLoopback
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

func newSMTPServer(cfg Config, be smtp.Backend) *smtp.Server {
	srv := smtp.NewServer(be)
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLSConfig
	// go-smtp's switch is global; sessions decide per connection in
	// AuthMechanisms and Auth (TLS, trusted address or configuration).
	srv.AllowInsecureAuth = true
	// go-smtp's DATA reader refuses the read that would follow the last
	// allowed octet, before it sees the end-of-data line, so a message of
	// exactly its limit would fail: it gets one octet more and the session
	// enforces MaxMessageBytes itself (EHLO shows SIZE MaxMessageBytes+1).
	srv.MaxMessageBytes = cfg.MaxMessageBytes + 1
	srv.MaxRecipients = cfg.MaxRecipients // 452 4.5.3 from go-smtp itself
	// Off: go-smtp's line limit also applies inside DATA, where it would
	// cut the connection on a long body line; trackedConn bounds command
	// input instead (maxCommandBytes).
	srv.MaxLineLength = 0
	// Off: trackedConn sets every read deadline (idle and DATA limits).
	srv.ReadTimeout = 0
	srv.WriteTimeout = cfg.WriteTimeout
	srv.ErrorLog = log.New(io.Discard, "", 0)
	return srv
}

// Serve accepts STARTTLS submission connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.addr = l.Addr()
	s.mu.Unlock()
	return s.serve(newListener(l, s, nil))
}

// ServeTLS accepts implicit-TLS connections (RFC 8314) on l, a plain TCP
// listener that it wraps with Config.TLSConfig.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.cfg.TLSConfig == nil {
		return errors.New("smtpd: implicit TLS without a TLS configuration")
	}
	s.mu.Lock()
	s.tlsAddr = l.Addr()
	s.mu.Unlock()
	return s.serve(newListener(l, s, s.cfg.TLSConfig))
}

func (s *Server) serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	if err := s.smtp.Serve(l); err != nil && !s.closing.Load() {
		return fmt.Errorf("smtpd: serve %s: %w", l.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on Config.Listen and, when set, Config.ListenTLS
// and serves both until Shutdown. It returns the first serving error.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("smtpd: listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.ListenTLS == "" {
		return s.Serve(l)
	}
	lt, err := net.Listen("tcp", s.cfg.ListenTLS)
	if err != nil {
		l.Close()
		return fmt.Errorf("smtpd: listen %s: %w", s.cfg.ListenTLS, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(l) }()
	go func() { errc <- s.ServeTLS(lt) }()
	if err := <-errc; err != nil {
		return err
	}
	return <-errc
}

// Addr is the STARTTLS listener's address (nil before Serve).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// TLSAddr is the implicit-TLS listener's address (nil before ServeTLS).
func (s *Server) TLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsAddr
}

// Shutdown stops accepting connections, closes idle ones, lets every
// transaction in flight finish (its connection is closed after the reply)
// and returns when all connections are gone. When ctx ends first, the
// remaining connections are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.closeConns(false)
	err := s.smtp.Shutdown(ctx)
	if ctxErr := ctx.Err(); ctxErr != nil {
		// go-smtp's Close does nothing after Shutdown: close them here.
		s.cancel()
		s.closeConns(true)
		return ctxErr
	}
	s.cancel()
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("smtpd: shutdown: %w", err)
	}
	return nil
}

// closeConns closes every connection not inside a transaction, or every
// connection with all.
func (s *Server) closeConns(all bool) {
	s.mu.Lock()
	var list []*trackedConn
	for c := range s.conns {
		if all || !c.busy.Load() {
			list = append(list, c)
		}
	}
	s.mu.Unlock()
	for _, c := range list {
		c.Close()
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if s.closing.Load() {
		return nil, errShuttingDown()
	}
	return newSession(s, c), nil
}

// BufferedBytes returns the message bytes all transactions hold now
// (reserved from MaxBufferedBytes); also the sendergate_smtpd_buffered_bytes
// gauge.
func (s *Server) BufferedBytes() int64 { return s.bufs.used.Load() }

// newID returns 16 random hex characters.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}
