package bounce

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options' zero fields.
const (
	DefaultMaxMessageBytes     = 2 << 20         // bounce.max_message_bytes
	DefaultMaxAge              = 720 * time.Hour // bounce.max_age
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 50
	readTimeout                = 5 * time.Minute
	writeTimeout               = time.Minute
	maxRcpts                   = 10
	// maxConnTime bounds a connection's life however it keeps busy
	// (NOOPs within the read timeout would otherwise hold it forever).
	maxConnTime = 30 * time.Minute
)

// Owner is the organization and sending domain behind a return-path
// domain.
type Owner struct {
	OrgID  string
	Domain string // the sending domain, e.g. example.com for mailing.example.com
}

// Domains maps a served return-path domain to its owner.
type Domains interface {
	// ReturnPathOwner returns the owner of return-path domain domain
	// (lowercase), ok false when it is not served; an error makes RCPT
	// answer 451 4.3.0 so the sender retries.
	ReturnPathOwner(ctx context.Context, domain string) (owner Owner, ok bool, err error)
}

// Sink receives each authenticated, parsed bounce.
type Sink interface {
	// Bounce records b; an error makes the server answer 451 4.3.0 so
	// the sender retries.
	Bounce(ctx context.Context, b *Bounce) error
}

// Bounce is an authenticated report about one message sent.
type Bounce struct {
	OrgID         string
	Domain        string // the return-path domain it came back to
	SendingDomain string // the domain whose return-path domain it is
	MessageID     string // from the VERP id
	SentAt        time.Time
	Report        *Report
}

// Options configures a Server. Domains, Sink and Codec are required.
type Options struct {
	// Hostname is the greeting name ("localhost" when empty).
	Hostname string
	// MaxMessageBytes limits a bounce (552 5.3.4 past it; bounce.max_message_bytes).
	MaxMessageBytes int64
	// MaxAge: older ids are accepted and dropped (bounce.max_age).
	MaxAge time.Duration
	// TLS offers STARTTLS when set.
	TLS *tls.Config
	// Domains says which return-path domains are served, and whose.
	Domains Domains
	// Sink receives the authenticated bounces.
	Sink Sink
	// Codec verifies the VERP ids.
	Codec *Codec
	// Logger receives one line per bounce received or dropped; nil discards.
	Logger *slog.Logger
	// Registerer receives the sendergate_bounce_* metrics; nil: none.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MaxConnections and MaxConnectionsPerIP bound open connections;
	// past either the greeting is 421 4.7.0.
	MaxConnections, MaxConnectionsPerIP int
}

// Server is the bounce receiver. Create it with New.
type Server struct {
	opts     Options
	smtp     *smtp.Server
	received *prometheus.CounterVec
	dropped  *prometheus.CounterVec

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	if opts.Domains == nil || opts.Sink == nil || opts.Codec == nil {
		return nil, errors.New("bounce: Domains, Sink and Codec are required")
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, byIP: make(map[string]int),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_bounce_received_total",
			Help: "Authenticated bounces handed to the sink, by kind: hard, soft, complaint.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_bounce_dropped_total",
			Help: "Bounces accepted and dropped, by reason: bad_mac, expired, unparsed, recipient_mismatch.",
		}, []string{"reason"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.received, s.dropped} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("bounce: registering metrics: %w", err)
			}
		}
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, remote: c.Conn().RemoteAddr().String()}, nil
	}))
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = maxRcpts
	srv.ReadTimeout, srv.WriteTimeout = readTimeout, writeTimeout
	srv.TLSConfig = opts.TLS
	srv.MaxLineLength = 4000
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	return s.smtp.Serve(&limitListener{Listener: l, s: s})
}

// Close stops the server and closes its connections.
func (s *Server) Close() error { return s.smtp.Close() }

// limitListener refuses connections past MaxConnections or
// MaxConnectionsPerIP with 421 4.7.0 before the greeting.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		if l.s.acquire(ip) {
			return &countedConn{Conn: c, s: l.s, ip: ip, until: time.Now().Add(maxConnTime)}, nil
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "421 4.7.0 Too many connections, try again later\r\n")
		c.Close()
	}
}

func (s *Server) acquire(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.opts.MaxConnections || s.byIP[ip] >= s.opts.MaxConnectionsPerIP {
		return false
	}
	s.total++
	s.byIP[ip]++
	return true
}

func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.byIP[ip]--; s.byIP[ip] <= 0 {
		delete(s.byIP, ip)
	}
}

// countedConn is a counted connection whose read deadlines never pass
// its end of life.
type countedConn struct {
	net.Conn
	s     *Server
	ip    string
	until time.Time
	once  sync.Once
}

func (c *countedConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.until) {
		t = c.until
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *countedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.s.release(c.ip) })
	return c.Conn.Close()
}

// rcpt is an accepted bounce address.
type rcpt struct {
	id, domain string
	owner      Owner
}

type session struct {
	s      *Server
	remote string
	from   string
	rcpts  []rcpt
}

func (ss *session) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *session) Logout() error { return nil }

// Mail accepts any sender, the null sender included (RFC 3464 2).
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

// Rcpt accepts bounce+ID@D for served domains D; the MAC is checked only
// after DATA, so a forger learns nothing from the reply.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	id, domain, ok := ParseAddress(to)
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		owner, served, err := ss.s.opts.Domains.ReturnPathOwner(ctx, domain)
		cancel()
		if err != nil {
			ss.s.opts.Logger.Error("bounce: return-path lookup failed", slog.String("domain", domain), slog.Any("err", err))
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, try again later"}
		}
		if served {
			ss.rcpts = append(ss.rcpts, rcpt{id: id, domain: domain, owner: owner})
			return nil
		}
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such bounce address"}
}

// Data authenticates each recipient's id, parses the message and hands
// the bounces to the sink.
func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp's 552 5.3.4 past MaxMessageBytes
	}
	s := ss.s
	now := s.opts.Now()
	var rep *Report
	for _, rc := range ss.rcpts {
		id, err := s.opts.Codec.DecodeID(rc.id, rc.domain, now, s.opts.MaxAge)
		msgID := id.MessageID
		if err != nil {
			reason := "bad_mac"
			if errors.Is(err, ErrExpired) {
				reason = "expired"
			}
			s.drop(reason, ss, rc, err)
			continue
		}
		if rep == nil {
			if rep, err = Parse(bytes.NewReader(data)); err != nil || rep.Kind == Unknown {
				s.drop("unparsed", ss, rc, err)
				return nil
			}
		}
		// An id bound to its message's one recipient acts on that
		// recipient only: a recipient who forges a report naming others
		// suppresses nobody else.
		r := rep
		if covered := covered(id, rep.Recipients); len(covered) < len(rep.Recipients) {
			if len(covered) == 0 && rep.Kind == Complaint {
				// Feedback loops often redact the recipient: the
				// complaint still tells which message drew it.
				cp := *rep
				cp.Recipients = nil
				r = &cp
			} else if len(covered) == 0 {
				s.drop("recipient_mismatch", ss, rc, fmt.Errorf("the report names none of the message's recipients"))
				continue
			}
			cp := *rep
			cp.Recipients = covered
			r = &cp
		}
		b := &Bounce{OrgID: rc.owner.OrgID, Domain: rc.domain, SendingDomain: rc.owner.Domain, MessageID: msgID, SentAt: id.Sent, Report: r}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = s.opts.Sink.Bounce(ctx, b)
		cancel()
		if err != nil {
			s.opts.Logger.Error("bounce sink failed", slog.String("remote", ss.remote), slog.String("msg", msgID), slog.Any("err", err))
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, try again later"}
		}
		s.received.WithLabelValues(string(rep.Kind)).Inc()
		s.opts.Logger.Info("bounce received", slog.String("remote", ss.remote), slog.String("org", rc.owner.OrgID),
			slog.String("msg", msgID), slog.String("kind", string(rep.Kind)))
	}
	return nil
}

// covered returns the recipients of rs that id may act on.
func covered(id ID, rs []Recipient) []Recipient {
	out := make([]Recipient, 0, len(rs))
	for _, r := range rs {
		if id.Covers(r.Address) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) drop(reason string, ss *session, rc rcpt, err error) {
	s.dropped.WithLabelValues(reason).Inc()
	s.opts.Logger.Warn("bounce dropped", slog.String("remote", ss.remote), slog.String("domain", rc.domain),
		slog.String("reason", reason), slog.Any("err", err))
}
