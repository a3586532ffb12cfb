package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Defaults for UpstreamConfig's zero fields.
const (
	DefaultMaxIdle     = 64
	DefaultIdleTimeout = 60 * time.Second
	DefaultDialTimeout = 10 * time.Second
	// DefaultCommandTimeout is shorter than the 5 minutes RFC 5321 4.5.3.2
	// suggests for MAIL and RCPT: our own submission client is waiting on
	// the line, and an upstream MTA on the same network that has not
	// answered a command in 30s is better reported as 451 (the client
	// retries) than left to hit the client's own timeout.
	DefaultCommandTimeout = 30 * time.Second
	// DefaultDataTimeout bounds sending the content and, separately,
	// waiting for the reply to the final dot. RFC 5321 4.5.3.2.6 suggests
	// 10 minutes for the latter; 2 minutes is enough for an MTA that only
	// queues, and a lost reply means 451 and a client retry.
	DefaultDataTimeout = 120 * time.Second
)

// UpstreamConfig configures an Upstream. Zero durations and MaxIdle take the
// defaults above.
type UpstreamConfig struct {
	// Addr is the upstream MTA, "host:port".
	Addr string
	// TLS is "none" (or empty), "starttls" (RFC 3207; a server without
	// STARTTLS is refused, never used in clear) or "tls" (implicit TLS).
	TLS string
	// TLSConfig is optional; it is cloned, and its ServerName defaults to
	// the host of Addr.
	TLSConfig *tls.Config
	// Username and Password enable AUTH PLAIN (RFC 4954) when Username is
	// set; a server that does not offer PLAIN is treated as unreachable.
	Username, Password string
	// LocalName is the EHLO name ("localhost" when empty), before and
	// after STARTTLS.
	LocalName string
	// MaxIdle bounds the pooled idle connections.
	MaxIdle int
	// IdleTimeout closes pooled connections idle for longer. Keep it below
	// the upstream's own idle timeout (Postfix smtpd_timeout: 300s).
	IdleTimeout time.Duration
	// DialTimeout bounds TCP connect and, for implicit TLS, the handshake.
	DialTimeout time.Duration
	// CommandTimeout bounds each command's reply (greeting, EHLO, STARTTLS,
	// AUTH, MAIL, RCPT, DATA, RSET).
	CommandTimeout time.Duration
	// DataTimeout bounds writing the content and waiting for the final
	// reply, each.
	DataTimeout time.Duration
	// Logger receives the causes behind 451 replies; nil discards.
	Logger *slog.Logger
}

// Upstream relays messages to one upstream MTA over pooled SMTP
// connections. It is safe for concurrent use; the number of connections in
// use at once is bounded only by the callers, the idle ones by MaxIdle.
type Upstream struct {
	cfg       UpstreamConfig
	tlsConfig *tls.Config
	cfgErr    error
	log       *slog.Logger

	mu     sync.Mutex
	idle   []*conn // oldest first; taken from the end
	closed bool
}

// conn is one SMTP session, greeted and authenticated.
type conn struct {
	client    *smtp.Client // greeting, EHLO, AUTH, QUIT
	raw       net.Conn     // the TCP (or implicit TLS) conn under client
	session                // transactions, on raw or on TLS over it
	idleSince time.Time
	broken    bool       // closed under the client, or left in DATA
	idle      *idleCheck // peeks at raw before BDAT reuses it
}

// NewUpstream returns an Upstream for cfg. It does not connect; a bad TLS
// mode makes every Send answer 451 4.4.1 (config validation belongs to the
// config package).
func NewUpstream(cfg UpstreamConfig) *Upstream {
	setDefaults(&cfg)
	u := &Upstream{cfg: cfg, log: cfg.Logger}
	switch cfg.TLS {
	case "none", "starttls", "tls":
	default:
		u.cfgErr = fmt.Errorf("relay: unknown upstream TLS mode %q", cfg.TLS)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		u.cfgErr = fmt.Errorf("relay: upstream address %q: %w", cfg.Addr, err)
	}
	u.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		u.tlsConfig = cfg.TLSConfig.Clone()
	}
	if u.tlsConfig.ServerName == "" {
		u.tlsConfig.ServerName = host
	}
	if cfg.TLS == "none" && cfg.Username != "" {
		u.log.Warn("upstream AUTH without TLS sends the password in clear", "upstream", cfg.Addr)
	}
	return u
}

func setDefaults(cfg *UpstreamConfig) {
	if cfg.TLS == "" {
		cfg.TLS = "none"
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// Send relays m and returns nil once the upstream has answered 250 to the
// final dot. Errors are bare *smtp.SMTPError values: the upstream's own
// refusal, or 451 4.4.1 when it could not be reached or the session broke.
// A pooled connection found dead before the content was sent is replaced
// and the message retried once.
func (u *Upstream) Send(ctx context.Context, m *Message) error {
	if err := checkEnvelope(m); err != nil {
		return err
	}
	if u.cfgErr != nil {
		u.log.Error("upstream misconfigured", "id", m.ID, "err", u.cfgErr)
		return errUnreachable()
	}
	fresh := false
	for {
		c, reused, err := u.get(ctx, fresh)
		if err != nil {
			u.log.Warn("upstream unreachable", "id", m.ID, "upstream", u.cfg.Addr, "err", err)
			return errUnreachable()
		}
		sent, err := u.transact(ctx, c, m, reused)
		if err == nil {
			u.put(c)
			return nil
		}
		var reply *smtp.SMTPError
		if errors.As(err, &reply) && reply.Code != 421 {
			u.afterRefusal(c, sent)
			return reply
		}
		c.client.Close()
		// A reused connection that fails before the content went out was
		// most likely closed by the upstream while idle: retry once on a
		// new one. After the content started, a retry could duplicate.
		if reused && !sent && ctx.Err() == nil {
			u.log.Debug("stale pooled upstream connection, retrying", "id", m.ID, "err", err)
			fresh = true
			continue
		}
		u.log.Warn("upstream session failed", "id", m.ID, "upstream", u.cfg.Addr,
			"content_sent", sent, "err", err)
		return errUnreachable()
	}
}

// transact runs MAIL, RCPT and DATA on c, pipelined (RFC 2920) when the
// upstream offers PIPELINING, then sends the content; or all of it in one
// write with BDAT (see chunked). sent reports whether any of the content
// may have reached the upstream. Upstream replies come back as
// *smtp.SMTPError (go-smtp's convention); any other error is I/O.
func (u *Upstream) transact(ctx context.Context, c *conn, m *Message, reused bool) (sent bool, err error) {
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	defer func() {
		if !stop() {
			// ctx ended: the conn is closed, even if the reply made it.
			c.broken = true
		}
	}()
	utf8 := false
	if !isASCII(m.From) || !allASCII(m.To) {
		// RFC 6531 3.4: non-ASCII addresses need SMTPUTF8 all the way.
		if !c.extUTF8 {
			return false, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
				Message: "upstream does not support SMTPUTF8 for non-ASCII addresses"}
		}
		utf8 = true
	}
	debug := u.log.Enabled(ctx, slog.LevelDebug)
	if c.chunked(m, reused) {
		sent, resp, err := u.transactBDAT(c, m, utf8, debug)
		if err == nil && debug {
			u.log.Debug("upstream accepted", "id", m.ID, "reply", resp)
		}
		return sent, err
	}
	if err := u.envelope(c, m, utf8); err != nil {
		return false, err
	}
	// The content, then the reply to the final dot, each within DataTimeout.
	if err := c.nc.SetWriteDeadline(time.Now().Add(u.cfg.DataTimeout)); err != nil {
		return false, fmt.Errorf("set deadline: %w", err)
	}
	c.dw.reset(c.bw)
	for _, b := range m.Data {
		if _, err := c.dw.Write(b); err != nil {
			return true, fmt.Errorf("writing content: %w", err)
		}
	}
	if err := c.dw.close(); err != nil {
		return true, fmt.Errorf("writing content: %w", err)
	}
	resp, err := c.reply(250, u.cfg.DataTimeout, debug)
	if err != nil {
		return true, fmt.Errorf("end of DATA: %w", err)
	}
	if debug {
		u.log.Debug("upstream accepted", "id", m.ID, "reply", resp)
	}
	return true, nil
}

// envelope sends MAIL, one RCPT per recipient and DATA, and returns nil
// once DATA got its 354. Without PIPELINING each command waits for its
// reply; with it, all go out in one write and the replies are read in
// order (RFC 2920 3.1). The first refusal is returned, as without
// pipelining; a 421 or an I/O error ends the reading at once.
func (u *Upstream) envelope(c *conn, m *Message, utf8 bool) error {
	timeout := u.cfg.CommandTimeout
	c.writeMail(m.From, m.Size(), utf8)
	if !c.pipelining {
		if err := c.cmd(250, timeout); err != nil {
			return fmt.Errorf("MAIL: %w", err)
		}
		for _, to := range m.To {
			c.writeRcpt(to)
			if err := c.cmd(25, timeout); err != nil {
				return fmt.Errorf("RCPT: %w", err)
			}
		}
		c.bw.WriteString("DATA\r\n")
		if err := c.cmd(354, timeout); err != nil {
			return fmt.Errorf("DATA: %w", err)
		}
		return nil
	}
	for _, to := range m.To {
		c.writeRcpt(to)
	}
	c.bw.WriteString("DATA\r\n")
	if err := c.flush(timeout); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	var refusal error
	check := func(verb string, expect int) error {
		_, err := c.reply(expect, timeout, false)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s: %w", verb, err)
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) || reply.Code == 421 {
			return err // the session is over
		}
		if refusal == nil {
			refusal = err
		}
		return nil
	}
	if err := check("MAIL", 250); err != nil {
		return err
	}
	for range m.To {
		if err := check("RCPT", 25); err != nil {
			return err
		}
	}
	envelopeRefusal := refusal
	refusal = nil
	if err := check("DATA", 354); err != nil {
		return err
	}
	if envelopeRefusal == nil {
		return refusal
	}
	if refusal == nil {
		// DATA got 354 although MAIL or a RCPT was refused: the upstream
		// now waits for content for the recipients it took. Sending a dot
		// would deliver an empty message to them, so the only way to keep
		// the message all or nothing is to drop the connection.
		c.broken = true
	}
	return envelopeRefusal
}

// afterRefusal returns c to the pool after the upstream refused the
// message, aborting the transaction with RSET when it is still open.
func (u *Upstream) afterRefusal(c *conn, sent bool) {
	if !sent && !c.broken {
		if err := c.reset(u.cfg.CommandTimeout); err != nil {
			c.client.Close()
			return
		}
	}
	u.put(c)
}

// get takes a pooled connection (reused=true) or dials a new one; fresh
// forces a new one.
func (u *Upstream) get(ctx context.Context, fresh bool) (c *conn, reused bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if !fresh {
		if c := u.takeIdle(); c != nil {
			return c, true, nil
		}
	}
	c, err = u.dial(ctx)
	return c, false, err
}

func (u *Upstream) takeIdle() *conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked(time.Now())
	if len(u.idle) == 0 {
		return nil
	}
	c := u.idle[len(u.idle)-1]
	u.idle = u.idle[:len(u.idle)-1]
	return c
}

// put returns c to the idle pool, or closes it when the pool is full,
// closed, or c is broken.
func (u *Upstream) put(c *conn) {
	if c.broken {
		c.client.Close()
		return
	}
	c.idleSince = time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked(c.idleSince)
	if u.closed || len(u.idle) >= u.cfg.MaxIdle {
		c.client.Close()
		return
	}
	u.idle = append(u.idle, c)
}

// pruneLocked closes idle connections older than IdleTimeout. The pool is
// ordered by idleSince, so they are at the front.
func (u *Upstream) pruneLocked(now time.Time) {
	n := 0
	for n < len(u.idle) && now.Sub(u.idle[n].idleSince) > u.cfg.IdleTimeout {
		u.idle[n].client.Close()
		n++
	}
	if n > 0 {
		u.idle = append(u.idle[:0], u.idle[n:]...)
	}
}

// Close closes the idle connections (with QUIT, RFC 5321 4.1.1.10) and
// stops pooling; Sends in flight finish and close their connection after.
// It always returns nil.
func (u *Upstream) Close() error {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.closed = true
	u.mu.Unlock()
	for _, c := range idle {
		c.client.CommandTimeout = time.Second
		if err := c.client.Quit(); err != nil {
			c.client.Close()
		}
	}
	return nil
}

// dial opens, greets, secures and authenticates a new session. The whole
// setup is bounded: go-smtp's STARTTLS helper runs its first commands
// before our CommandTimeout can be set.
func (u *Upstream) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.DialTimeout+3*u.cfg.CommandTimeout)
	defer cancel()
	d := &net.Dialer{Timeout: u.cfg.DialTimeout}
	var raw net.Conn
	var err error
	if u.cfg.TLS == "tls" {
		raw, err = (&tls.Dialer{NetDialer: d, Config: u.tlsConfig}).DialContext(ctx, "tcp", u.cfg.Addr)
	} else {
		raw, err = d.DialContext(ctx, "tcp", u.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	client, nc, err := u.handshake(raw)
	if !stop() && err == nil {
		client.Close()
		err = fmt.Errorf("session setup: %w", context.Cause(ctx))
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	return &conn{client: client, raw: raw, session: newSession(nc, client), idle: newIdleCheck(raw)}, nil
}

// handshake runs greeting, EHLO, STARTTLS and AUTH on raw. It returns
// the client and the conn the session now speaks on (raw, or TLS over it).
func (u *Upstream) handshake(raw net.Conn) (*smtp.Client, net.Conn, error) {
	nc := raw
	var client *smtp.Client
	if u.cfg.TLS == "starttls" {
		// STARTTLS is done here, not by go-smtp, because transactions
		// need the TLS conn, which go-smtp's client does not expose.
		tc, err := startTLS(raw, u.cfg.LocalName, u.tlsConfig, u.cfg.CommandTimeout)
		if err != nil {
			return nil, nil, fmt.Errorf("STARTTLS: %w", err)
		}
		nc = tc
		client = smtp.NewClient(&greetedConn{Conn: tc, pending: []byte("220 TLS\r\n")})
	} else {
		client = smtp.NewClient(raw)
	}
	client.CommandTimeout = u.cfg.CommandTimeout
	client.SubmissionTimeout = u.cfg.DataTimeout
	if err := client.Hello(u.cfg.LocalName); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("EHLO: %w", err)
	}
	if u.cfg.Username == "" {
		return client, nc, nil
	}
	if !client.SupportsAuth(sasl.Plain) {
		client.Close()
		return nil, nil, errors.New("AUTH: upstream does not offer PLAIN")
	}
	if err := client.Auth(sasl.NewPlainClient("", u.cfg.Username, u.cfg.Password)); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("AUTH: %w", err)
	}
	return client, nc, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
