package smtpd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
)

// session is one client connection's SMTP state from EHLO on (go-smtp
// starts a new one after STARTTLS).
type session struct {
	srv  *Server
	conn *smtp.Conn
	tc   *trackedConn // nil only for connections not accepted by Serve
	log  *slog.Logger
	addr netip.Addr // the client's address (the PROXY header's source, if any)
	ip   net.IP     // addr, for Config.TrustedNet
	acct *policy.Account
	tx   transaction
}

// transaction is the state from MAIL to the end of DATA.
type transaction struct {
	id       string
	mailFrom string // the client's envelope sender, logged and replaced
	rcpts    []string
	start    time.Time
	hold     *txHold // the recipients' place under the sending limits
}

var _ smtp.AuthSession = (*session)(nil)

func newSession(s *Server, c *smtp.Conn) *session {
	se := &session{srv: s, conn: c, tc: tracked(c.Conn())}
	attrs := []any{}
	if tc := se.tc; tc != nil {
		attrs = append(attrs, slog.String("conn", tc.connID), slog.String("remote", tc.client.String()))
		if tc.proxy != nil {
			attrs = append(attrs, slog.String("proxy", tc.proxy.String()))
		}
		se.addr = tc.client.Addr()
		tc.authed.Store(false) // a new session (first EHLO, or after STARTTLS)
		tc.progress()
		se.noteTLS()
	} else {
		remote := c.Conn().RemoteAddr()
		attrs = append(attrs, slog.String("conn", newID()), slog.String("remote", remote.String()))
		se.addr = addrPort(remote).Addr()
	}
	if se.addr.IsValid() {
		se.ip = net.IP(se.addr.AsSlice())
	}
	se.log = s.log.With(attrs...)
	return se
}

// noteTLS tells the connection about its TLS layer once go-smtp has
// completed STARTTLS (go-smtp swaps the connection before it ends the old
// session and before it creates the new one).
func (se *session) noteTLS() {
	if t, ok := se.conn.Conn().(*tls.Conn); ok && se.tc != nil {
		se.tc.setTLS(t)
	}
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
	if se.tc != nil {
		se.tc.progress()
	}
	if !se.authAllowed() {
		return nil, errEncryptionRequired()
	}
	if se.srv.limiter.Blocked(se.addr) {
		se.log.Warn("AUTH refused: too many failures from this address")
		return nil, errAuthBlocked()
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return saslGuard{sasl.NewPlainServer(func(authzid, username, password string) error {
			// RFC 4616 2: the authorization identity must be empty or the
			// username itself; acting as another account is not offered.
			if authzid != "" && authzid != username {
				return se.authFailed(username, password, errAuthzid())
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
		return se.authFailed(username, password, errBadCredentials())
	}
	se.acct = acct
	if se.tc != nil {
		se.tc.authed.Store(true)
		se.tc.useful()
	}
	se.log.Info("authenticated", slog.String("account", acct.Username), slog.String("org", acct.Org))
	return nil
}

// authFailed counts a failure against the client address and returns
// reply. A connection that fails again with the username and password
// that failed last on it is not counted again: a client trying one wrong
// password with LOGIN, then PLAIN (swaks does) costs one failure, while
// every different password still counts.
func (se *session) authFailed(username, password string, reply *smtp.SMTPError) error {
	se.srv.metrics.authFailures.Inc()
	count := true
	if tc := se.tc; tc != nil {
		sum := sha256.Sum256([]byte(username + "\x00" + password))
		tc.authMu.Lock()
		count = sum != tc.lastFailed
		tc.lastFailed = sum
		tc.authMu.Unlock()
	}
	blocked := false
	if count {
		blocked = se.srv.limiter.Fail(se.addr)
	}
	se.log.Warn("AUTH failed", slog.String("username", username), slog.Bool("counted", count), slog.Bool("now_blocked", blocked))
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
	// Use this snapshot's account: a deleted account stops here, and so
	// does a session authenticated with a password rotated since.
	acct, ok := snap.Account(se.acct.Username)
	if !ok || acct.ID != se.acct.ID {
		return se.mailRefused(from, errAccountGone())
	}
	if !acct.SameCredentials(se.acct) {
		return se.mailRefused(from, errCredentialsChanged())
	}
	if opts != nil && opts.Size > se.srv.cfg.MaxMessageBytes {
		// go-smtp checks SIZE against its limit, one octet higher.
		return se.mailRefused(from, errTooLarge(se.srv.cfg.MaxMessageBytes))
	}
	se.acct = acct
	se.endHold(se.tx.hold, false)
	se.tx = transaction{id: newID(), mailFrom: from, start: se.srv.cfg.Now(), hold: &txHold{}}
	if se.tc != nil {
		se.tc.useful()
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
	se.log.Info("transaction", slog.String("id", newID()), slog.String("account", account), slog.String("mail_from", from),
		slog.String("result", result), slog.Int("code", reply.Code), slog.String("reply", replyText(reply)))
	return reply
}

// Rcpt implements smtp.Session; go-smtp enforces MaxRecipients. Each
// recipient is admitted under the sending limits: past one it gets 451
// 4.7.0 and the recipients before it stay accepted (RFC 5321 3.3).
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if se.tc != nil {
		se.tc.useful()
	}
	if se.acct != nil && se.tx.hold != nil {
		env := &gate.Envelope{ID: se.tx.id, Username: se.acct.Username, AccountID: se.acct.ID, Rcpts: []string{to}}
		h, ref := se.srv.pipe.stage.Recipients(se.srv.ctx, env, 1)
		if ref != nil {
			se.log.Info("recipient refused", slog.String("id", se.tx.id), slog.String("account", se.acct.Username),
				slog.String("reason", ref.Reason), slog.String("reply", ref.Error()))
			return reply(ref)
		}
		se.tx.hold.add(h)
	}
	se.tx.rcpts = append(se.tx.rcpts, to)
	return nil
}

// txHold is a transaction's recipients under the sending limits, shared
// by the session and a Data that go-smtp may run beside a Reset (BDAT).
type txHold struct {
	mu sync.Mutex
	h  gate.Hold
}

func (t *txHold) add(h gate.Hold) {
	t.mu.Lock()
	t.h.Add(h)
	t.mu.Unlock()
}

// take returns the hold, once: later calls return the zero Hold.
func (t *txHold) take() gate.Hold {
	if t == nil {
		return gate.Hold{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.h
	t.h = gate.Hold{}
	return h
}

// endHold ends the transaction's place under the sending limits: kept
// when its message was accepted, given back otherwise.
func (se *session) endHold(t *txHold, accepted bool) {
	if h := t.take(); !accepted {
		se.srv.pipe.stage.Release(h)
	}
}

// Reset implements smtp.Session (RSET, a repeated EHLO, the end of a
// transaction). go-smtp calls it after writing the reply to DATA, so the
// message transfer ends here, and during a shutdown the connection is
// closed here.
func (se *session) Reset() {
	se.endHold(se.tx.hold, false)
	se.tx = transaction{}
	if se.tc != nil {
		se.tc.endData()
		se.tc.progress()
		se.tc.busy.Store(false)
		if se.srv.closing.Load() {
			se.tc.Close()
		}
	}
}

// Logout implements smtp.Session. go-smtp calls it when the connection
// closes and after STARTTLS, with the TLS connection already in place.
func (se *session) Logout() error {
	se.endHold(se.tx.hold, false)
	se.noteTLS()
	return nil
}

// Data implements smtp.Session: it reads the message, runs the pipeline
// and, for an accepted message, relays it before replying.
func (se *session) Data(r io.Reader) error {
	tx := se.tx // go-smtp may Reset concurrently when a BDAT transfer fails
	if se.tc != nil {
		// go-smtp hands DATA its dot-unstuffing reader and BDAT a pipe
		// that it fills from the connection while reading commands.
		_, bdat := r.(*io.PipeReader)
		se.tc.startData(bdat)
		if bdat {
			r = &creditReader{r: r, tc: se.tc}
		}
		defer se.tc.useful()
	}
	m, err := se.readMessage(r)
	defer m.release()
	size := m.len()
	if err != nil {
		reply, logErr := se.readFailed(err, tx.id)
		se.endHold(tx.hold, false)
		se.logTx(&tx, &txLog{reply: reply, size: size, err: logErr})
		return reply
	}
	if se.tc != nil {
		// RFC 2920 3.2 (7): a client that sent the message without waiting
		// may have emptied the input; the stage and the relay take their
		// time, so the replies held (batch.go) go out first.
		_ = se.tc.flush()
	}
	sub := &submission{
		ID: tx.id, Account: se.acct, Helo: se.conn.Hostname(), TLS: se.isTLS(),
		Rcpts: tx.rcpts, Data: m.data, Time: se.srv.cfg.Now(),
	}
	if se.addr.IsValid() {
		sub.RemoteIP = se.addr.String()
	}
	out := se.srv.pipe.process(se.srv.ctx, sub)
	l := &txLog{outcome: out, reply: out.Reply, size: size, err: out.Err}
	if out.Message != nil {
		start := time.Now()
		err := se.srv.out.Send(se.srv.ctx, out.Message)
		l.relay = time.Since(start)
		se.srv.metrics.relay.Observe(l.relay.Seconds())
		l.reply, l.err = relayReply(err, tx.id, se.srv.out)
	}
	if out.Sign > 0 {
		se.srv.metrics.sign.Observe(out.Sign.Seconds())
	}
	se.endHold(tx.hold, l.reply.Code/100 == 2)
	se.logTx(&tx, l)
	return l.reply
}

// readFailed is the reply to a message that could not be read whole, and
// the error to log with it (nil for the client's own doing).
func (se *session) readFailed(err error, id string) (*smtp.SMTPError, error) {
	cfg := &se.srv.cfg
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return errTooLarge(cfg.MaxMessageBytes), nil
	case errors.Is(err, errBudget):
		return errStorage(), nil
	}
	var ne net.Error
	if se.tc != nil && errors.As(err, &ne) && ne.Timeout() {
		if timeoutKind(se.tc.timeout.Load()) == timeoutData {
			se.srv.metrics.closed.WithLabelValues(timeoutData.label()).Inc()
			return errDataTimeLimit(cfg.MaxDataTime), nil
		}
		se.srv.metrics.closed.WithLabelValues(timeoutRead.label()).Inc()
		return errDataStalled(cfg.ReadTimeout), nil
	}
	// The client went away, or a limit closed the connection.
	return errInternal(id), fmt.Errorf("smtpd: read message: %w", err)
}

// relayReply is the client's reply for the relay's verdict: 250 with the
// transaction id, or the relay's own reply verbatim.
func relayReply(err error, id string, out relay.Sender) (*smtp.SMTPError, error) {
	if err == nil {
		return accepted(id, out), nil
	}
	if reply, ok := err.(*smtp.SMTPError); ok {
		return reply, nil
	}
	return errInternal(id), err // not in relay's contract: log it
}

// readMessage reads the whole message into a buffer that grows with the
// data received (see buffers). The returned message is nil when the
// daemon-wide budget could not even provide an empty buffer.
func (se *session) readMessage(r io.Reader) (*message, error) {
	m := se.srv.bufs.get()
	if m == nil {
		return nil, errBudget
	}
	return m, m.readFrom(r, se.srv.cfg.MaxMessageBytes)
}

// creditReader is the BDAT pipe: what the session consumes from it left
// the connection as message data, not commands.
type creditReader struct {
	r  io.Reader
	tc *trackedConn
}

func (c *creditReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.tc.cmdBytes.Add(-int64(n))
		c.tc.lastUseful.Store(time.Now().UnixNano())
	}
	return n, err
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
func (se *session) logTx(tx *transaction, l *txLog) {
	result := classify(l.reply, l.err)
	se.srv.metrics.transactions.WithLabelValues(result).Inc()
	decision := string(l.Decision.Reason)
	if decision == "" {
		decision = "not_checked"
	}
	attrs := []slog.Attr{
		slog.String("id", tx.id),
		slog.String("account", se.acct.Username),
		slog.String("mail_from", tx.mailFrom),
		slog.String("from_domain", l.FromDomain),
		slog.Int("rcpts", len(tx.rcpts)),
		slog.String("decision", decision),
		slog.String("result", result),
		slog.Int("code", l.reply.Code),
		slog.String("reply", replyText(l.reply)),
		slog.Int("size", l.size),
		slog.Duration("total", se.srv.cfg.Now().Sub(tx.start)),
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
