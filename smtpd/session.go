package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/policy"
)

// session is one client connection's SMTP state from EHLO on (go-smtp
// starts a new one after STARTTLS).
type session struct {
	srv  *Server
	conn *smtp.Conn
	tc   *trackedConn // nil only for connections not accepted by Serve
	log  *slog.Logger
	ip   net.IP
	acct *policy.Account
	tx   transaction
}

// transaction is the state from MAIL to the end of DATA.
type transaction struct {
	id       string
	mailFrom string // the client's envelope sender, logged and replaced
	rcpts    []string
	sizeHint int64 // MAIL SIZE= (RFC 1870)
	start    time.Time
}

var _ smtp.AuthSession = (*session)(nil)

func newSession(s *Server, c *smtp.Conn) *session {
	se := &session{srv: s, conn: c, tc: tracked(c.Conn())}
	connID := newID()
	if se.tc != nil {
		connID = se.tc.connID
	}
	remote := c.Conn().RemoteAddr().String()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		se.ip = net.ParseIP(host)
	}
	se.log = s.log.With(slog.String("conn", connID), slog.String("remote", remote))
	return se
}

// isTLS reports whether the connection is encrypted.
func (se *session) isTLS() bool {
	_, ok := se.conn.TLSConnectionState()
	return ok
}

// authAllowed: AUTH needs TLS, except from a trusted (loopback) address or
// with AllowInsecureAuth (RFC 4954 4, RFC 8314 3).
func (se *session) authAllowed() bool {
	return se.isTLS() || se.srv.cfg.AllowInsecureAuth || (se.ip != nil && se.srv.cfg.TrustedNet(se.ip))
}

// AuthMechanisms implements smtp.AuthSession: nothing is advertised where
// AUTH is not allowed.
func (se *session) AuthMechanisms() []string {
	if !se.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (se *session) Auth(mech string) (sasl.Server, error) {
	if !se.authAllowed() {
		return nil, errEncryptionRequired()
	}
	if se.srv.limiter.Blocked(se.ip) {
		se.log.Warn("AUTH refused: too many failures from this address")
		return nil, errAuthBlocked()
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return saslGuard{sasl.NewPlainServer(func(authzid, username, password string) error {
			// RFC 4616 2: the authorization identity must be empty or the
			// username itself; acting as another account is not offered.
			if authzid != "" && authzid != username {
				return se.authFailed(username, errAuthzid())
			}
			return se.login(username, password)
		})}, nil
	case sasl.Login:
		return saslGuard{NewLoginServer(se.login)}, nil
	default:
		return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 7, 4}, Message: "Unsupported authentication mechanism"}
	}
}

// login checks credentials against the current snapshot.
func (se *session) login(username, password string) error {
	snap, err := se.srv.pol.Current()
	if err != nil {
		se.log.Warn("AUTH deferred: policy not loaded", slog.Any("err", err))
		return errNotReady()
	}
	acct, err := snap.Authenticate(username, password)
	if err != nil {
		return se.authFailed(username, errBadCredentials())
	}
	se.acct = acct
	se.log.Info("authenticated", slog.String("account", acct.Username), slog.String("org", acct.Org))
	return nil
}

// authFailed counts a failure against the client address and returns reply.
func (se *session) authFailed(username string, reply *smtp.SMTPError) error {
	se.srv.metrics.authFailures.Inc()
	blocked := se.srv.limiter.Fail(se.ip)
	se.log.Warn("AUTH failed", slog.String("username", username), slog.Bool("now_blocked", blocked))
	return reply
}

// saslGuard turns the plain errors of go-sasl's parsers into a 501 reply
// (go-smtp would send their text with 454).
type saslGuard struct{ sasl.Server }

func (g saslGuard) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.Server.Next(response)
	if err != nil {
		if _, ok := err.(*smtp.SMTPError); !ok {
			return nil, true, errAuthSyntax()
		}
	}
	return challenge, done, err
}

// Mail implements smtp.Session.
func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	if se.srv.closing.Load() {
		return errShuttingDown()
	}
	if se.acct == nil {
		return se.mailRefused(from, errAuthRequired())
	}
	snap, err := se.srv.pol.Current()
	if err != nil {
		return se.mailRefused(from, errNotReady())
	}
	// Use this snapshot's account: a deleted account stops here.
	acct, ok := snap.Account(se.acct.Username)
	if !ok || acct.ID != se.acct.ID {
		return se.mailRefused(from, errAccountGone())
	}
	se.acct = acct
	se.tx = transaction{id: newID(), mailFrom: from, start: se.srv.cfg.Now()}
	if opts != nil {
		se.tx.sizeHint = opts.Size
	}
	if se.tc != nil {
		se.tc.busy.Store(true)
	}
	return nil
}

// mailRefused logs a transaction that ends at MAIL (it never reaches the
// per-transaction line of DATA), counts it, and returns reply.
func (se *session) mailRefused(from string, reply *smtp.SMTPError) error {
	result := classify(reply, nil)
	se.srv.metrics.transactions.WithLabelValues(result).Inc()
	account := ""
	if se.acct != nil {
		account = se.acct.Username
	}
	se.log.Info("transaction", slog.String("account", account), slog.String("mail_from", from),
		slog.String("result", result), slog.Int("code", reply.Code), slog.String("reply", replyText(reply)))
	return reply
}

// Rcpt implements smtp.Session; go-smtp enforces MaxRecipients.
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.tx.rcpts = append(se.tx.rcpts, to)
	return nil
}

// Reset implements smtp.Session. go-smtp calls it after writing the reply
// to DATA, so during a shutdown the connection is closed here.
func (se *session) Reset() {
	se.tx = transaction{}
	if se.tc != nil {
		se.tc.busy.Store(false)
		if se.srv.closing.Load() {
			se.tc.Close()
		}
	}
}

// Logout implements smtp.Session.
func (se *session) Logout() error { return nil }

// Data implements smtp.Session: it reads the message, runs the pipeline
// and, for an accepted message, relays it before replying.
func (se *session) Data(r io.Reader) error {
	buf, err := se.readMessage(r)
	defer se.srv.putBuffer(buf)
	if errors.Is(err, smtp.ErrDataTooLarge) {
		se.logTx(&txLog{reply: errTooLarge(), size: buf.Len()})
		return errTooLarge()
	}
	if err != nil { // the client went away or timed out
		reply := errInternal(se.tx.id)
		se.logTx(&txLog{reply: reply, size: buf.Len(), err: fmt.Errorf("smtpd: read message: %w", err)})
		return reply
	}
	sub := &submission{
		ID: se.tx.id, Account: se.acct, Helo: se.conn.Hostname(), TLS: se.isTLS(),
		Rcpts: se.tx.rcpts, Data: buf.Bytes(), Time: se.srv.cfg.Now(),
	}
	if se.ip != nil {
		sub.RemoteIP = se.ip.String()
	}
	out := se.srv.pipe.process(se.srv.ctx, sub)
	l := &txLog{outcome: out, reply: out.Reply, size: buf.Len(), err: out.Err}
	if out.Message != nil {
		start := time.Now()
		err := se.srv.out.Send(se.srv.ctx, out.Message)
		l.relay = time.Since(start)
		se.srv.metrics.relay.Observe(l.relay.Seconds())
		l.reply, l.err = relayReply(err, se.tx.id)
	}
	if out.Sign > 0 {
		se.srv.metrics.sign.Observe(out.Sign.Seconds())
	}
	se.logTx(l)
	return l.reply
}

// relayReply is the client's reply for the relay's verdict: 250 with the
// transaction id, or the relay's own reply verbatim.
func relayReply(err error, id string) (*smtp.SMTPError, error) {
	if err == nil {
		return accepted(id), nil
	}
	if reply, ok := err.(*smtp.SMTPError); ok {
		return reply, nil
	}
	return errInternal(id), err // not in relay's contract: log it
}

// readMessage reads the whole message into a pooled buffer, renewing the
// read deadline on every read so that it bounds a stalled client, not a
// slow transfer.
func (se *session) readMessage(r io.Reader) (*bytes.Buffer, error) {
	buf := se.srv.getBuffer()
	if h := se.tx.sizeHint; h > 0 && h <= se.srv.cfg.MaxMessageBytes {
		buf.Grow(int(h) + 4096) // room for go-smtp's counting and a last read
	}
	_, err := buf.ReadFrom(&deadlineReader{r: r, conn: se.conn.Conn(), timeout: se.srv.cfg.ReadTimeout})
	return buf, err
}

type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	_ = d.conn.SetReadDeadline(time.Now().Add(d.timeout)) // an error shows on Read
	return d.r.Read(p)
}

// txLog is what the transaction log line reports.
type txLog struct {
	outcome
	reply *smtp.SMTPError
	err   error
	size  int
	relay time.Duration
}

// logTx writes the one log line of the transaction and counts its result.
func (se *session) logTx(l *txLog) {
	result := classify(l.reply, l.err)
	se.srv.metrics.transactions.WithLabelValues(result).Inc()
	decision := string(l.Decision.Reason)
	if decision == "" {
		decision = "not_checked"
	}
	attrs := []slog.Attr{
		slog.String("id", se.tx.id),
		slog.String("account", se.acct.Username),
		slog.String("mail_from", se.tx.mailFrom),
		slog.String("from_domain", l.FromDomain),
		slog.Int("rcpts", len(se.tx.rcpts)),
		slog.String("decision", decision),
		slog.String("result", result),
		slog.Int("code", l.reply.Code),
		slog.String("reply", replyText(l.reply)),
		slog.Int("size", l.size),
		slog.Duration("total", se.srv.cfg.Now().Sub(se.tx.start)),
		slog.Duration("sign", l.Sign),
		slog.Duration("relay", l.relay),
	}
	level := slog.LevelInfo
	if l.err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.Any("err", l.err))
	}
	se.log.LogAttrs(context.Background(), level, "transaction", attrs...)
}

// classify maps a reply to the result label.
func classify(reply *smtp.SMTPError, err error) string {
	switch {
	case err != nil:
		return resultError
	case reply.Code/100 == 2:
		return resultAccepted
	case reply.Code/100 == 5:
		return resultRefused
	default:
		return resultTempfail
	}
}

func replyText(r *smtp.SMTPError) string {
	e := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], r.Message)
}
