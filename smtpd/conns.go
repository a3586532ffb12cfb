package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// maxCommandBytes bounds what a client may send outside DATA without the
// session making progress (AUTH, MAIL, RCPT, RSET, EHLO): one overlong
// command line, or thousands of NOOPs. go-smtp's own line limit is off
// (it would also cut message lines, which the message stage judges), and
// its command reader keeps a whole line in memory, so this is what bounds
// that memory. It counts bytes off the socket, so it also holds under TLS.
const maxCommandBytes = 64 << 10

// refuseTimeout bounds the TLS handshake and the write of a refusal
// greeting; maxRefusing bounds how many such refusals run at once (past
// it, connections over a limit are closed without a word).
const (
	refuseTimeout = 10 * time.Second
	maxRefusing   = 64
)

// listener admits connections for go-smtp: it reads the PROXY header of a
// trusted proxy, applies the connection limits (421 4.7.0 instead of the
// greeting), completes the TLS handshake of implicit TLS and only then
// hands the connection to go-smtp's Serve loop. Each accepted connection is
// admitted on its own goroutine, so a slow proxy header or handshake never
// holds up the others.
type listener struct {
	net.Listener // the TCP listener
	s            *Server
	tls          *tls.Config // implicit TLS (RFC 8314) when set
	ready        chan net.Conn
	done         chan struct{}
	start, stop  sync.Once
	err          error // why done was closed; read after <-done
}

func newListener(l net.Listener, s *Server, tlsConf *tls.Config) *listener {
	return &listener{Listener: l, s: s, tls: tlsConf, ready: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener: the next admitted connection.
func (l *listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close implements net.Listener.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.finish(net.ErrClosed)
	return err
}

func (l *listener) finish(err error) {
	l.stop.Do(func() {
		l.err = err
		close(l.done)
	})
}

func (l *listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() && !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.s.log.Warn("accept failed, retrying", slog.Any("err", err), slog.Duration("in", delay))
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.finish(err)
			return
		}
		delay = 0
		go l.admit(c)
	}
}

// admit runs before anything is written to c: the PROXY header, the
// limits, the implicit TLS handshake.
func (l *listener) admit(c net.Conn) {
	conn, client, proxy, err := l.s.proxy.read(c)
	if err != nil {
		l.s.metrics.refused.WithLabelValues(refusedProxy).Inc()
		l.s.log.Warn("connection refused: bad PROXY header from a trusted proxy",
			slog.String("proxy", c.RemoteAddr().String()), slog.Any("err", err))
		l.refuse(c, errProxyHeader())
		return
	}
	tc, reply := l.s.track(conn, client, proxy, l.tls != nil)
	if reply != nil {
		l.refuse(conn, reply)
		return
	}
	var out net.Conn = tc
	if l.tls != nil {
		tlsConn := tls.Server(tc, l.tls)
		_ = tc.SetWriteDeadline(time.Now().Add(l.s.cfg.WriteTimeout))
		if err := tlsConn.Handshake(); err != nil { // reads are bounded by tc's pre-AUTH limit
			tc.Close()
			return
		}
		tc.setTLS(tlsConn)
		out = tlsConn
	}
	select {
	case l.ready <- out:
	case <-l.done:
		out.Close()
	}
}

// refuse writes reply as the greeting (inside TLS on an implicit-TLS
// listener) and closes c.
func (l *listener) refuse(c net.Conn, reply *smtp.SMTPError) {
	select {
	case l.s.refusing <- struct{}{}:
		defer func() { <-l.s.refusing }()
	default:
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	w := c
	if l.tls != nil {
		tlsConn := tls.Server(c, l.tls)
		if err := tlsConn.Handshake(); err != nil {
			c.Close()
			return
		}
		w = tlsConn
	}
	_, _ = w.Write(replyLine(reply))
	w.Close()
}

// track registers an admitted connection, or returns the greeting that
// refuses it (connection limits).
func (s *Server) track(c net.Conn, client netip.AddrPort, proxy net.Addr, implicitTLS bool) (*trackedConn, *smtp.SMTPError) {
	key, _ := limiterKey(client.Addr())
	if reason := s.counter.acquire(key); reason != "" {
		s.metrics.refused.WithLabelValues(reason).Inc()
		reply := errTooManyConnections()
		if reason == refusedPerIP {
			reply = errTooManyFromIP(s.cfg.MaxConnectionsPerIP)
		}
		s.log.Warn("connection refused", slog.String("remote", client.String()), slog.String("reason", reason))
		return nil, reply
	}
	now := time.Now()
	tc := &trackedConn{Conn: c, s: s, connID: newID(), client: client, proxy: proxy, key: key, implicitTLS: implicitTLS}
	tc.lastUseful.Store(now.UnixNano())
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	if s.closing.Load() {
		tc.Close()
	}
	return tc, nil
}

// trackedConn is an admitted connection. It knows the client's real
// address, sets every read deadline itself (go-smtp's ReadTimeout is off)
// and enforces the idle limits, the DATA time limit and maxCommandBytes.
// busy is set while a transaction (MAIL to the reply to DATA) is in
// progress on it.
type trackedConn struct {
	net.Conn
	s           *Server
	connID      string         // on every log line of the connection
	client      netip.AddrPort // the client: the PROXY header's source, or the peer
	proxy       net.Addr       // the proxy the client came through; nil for a direct client
	key         netip.Addr     // connection and AUTH limiter key
	implicitTLS bool
	busy        atomic.Bool
	once        sync.Once

	tlsConn    atomic.Pointer[tls.Conn] // the TLS layer once its handshake is done
	lastUseful atomic.Int64             // unix ns of the last AUTH, MAIL, RCPT, DATA or STARTTLS
	authed     atomic.Bool              // the current session authenticated
	inData     atomic.Bool              // reading DATA: no command budget, no idle limit
	dataUntil  atomic.Int64             // unix ns end of the DATA time limit; 0: none
	cmdBytes   atomic.Int64             // bytes read outside DATA since the session's last progress
	dead       atomic.Bool              // a limit ended the connection: reads return EOF
	linger     atomic.Bool              // aborted with input likely unread: drain before closing
	timeout    atomic.Int32             // the timeoutKind that ended a DATA read

	authMu     sync.Mutex
	lastFailed [32]byte // AUTH failure counted last on this connection; see authFailed

	wmu  sync.Mutex // guards wbuf; held while it is written
	wbuf []byte     // replies written by go-smtp, not yet sent (batch.go)
}

// timeoutKind says which limit a read ran into.
type timeoutKind int32

const (
	timeoutNone timeoutKind = iota
	timeoutRead
	timeoutPreAuth
	timeoutIdle
	timeoutData
)

// RemoteAddr implements net.Conn: the client's address, from the PROXY
// header when there is one.
func (c *trackedConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.client) }

// Read implements net.Conn. It first sends the replies held (batch.go):
// the session may now wait for the client. Before every read it sets the
// deadline: the earliest of ReadTimeout from now, the end of the DATA time
// limit and, outside DATA, the idle limit since the last useful command.
func (c *trackedConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		// The client does not take its replies (write deadline, reset):
		// the session is over.
		c.dead.Store(true)
		return 0, io.EOF
	}
	if c.dead.Load() {
		return 0, io.EOF
	}
	deadline, kind := c.readDeadline(time.Now())
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	inData := c.inData.Load()
	if !inData && c.cmdBytes.Add(int64(n)) > maxCommandBytes {
		c.abort("command_too_long", errCommandTooLong())
		return 0, io.EOF
	}
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		return n, err
	}
	if inData {
		// The session answers (errDataStalled, errDataTimeLimit); every
		// later read ends at once.
		c.timeout.Store(int32(kind))
		c.dead.Store(true)
		return n, err
	}
	c.abort(kind.label(), c.timeoutReply(kind))
	return 0, io.EOF
}

func (c *trackedConn) readDeadline(now time.Time) (time.Time, timeoutKind) {
	cfg := &c.s.cfg
	d, kind := now.Add(cfg.ReadTimeout), timeoutRead
	if until := c.dataUntil.Load(); until != 0 && until < d.UnixNano() {
		d, kind = time.Unix(0, until), timeoutData
	}
	if c.inData.Load() {
		return d, kind
	}
	idle, idleKind := cfg.PreAuthTimeout, timeoutPreAuth
	if c.authed.Load() {
		idle, idleKind = cfg.IdleTimeout, timeoutIdle
	}
	if t := time.Unix(0, c.lastUseful.Load()).Add(idle); t.Before(d) {
		d, kind = t, idleKind
	}
	return d, kind
}

func (k timeoutKind) label() string {
	switch k {
	case timeoutPreAuth:
		return "pre_auth_idle"
	case timeoutIdle:
		return "idle"
	case timeoutData:
		return "data_time_limit"
	default:
		return "read_timeout"
	}
}

func (c *trackedConn) timeoutReply(k timeoutKind) *smtp.SMTPError {
	cfg := &c.s.cfg
	switch k {
	case timeoutPreAuth:
		return errPreAuthIdle(cfg.PreAuthTimeout)
	case timeoutIdle:
		return errIdle(cfg.IdleTimeout)
	case timeoutData:
		return errDataTimeLimit(cfg.MaxDataTime)
	default:
		return errReadTimeout(cfg.ReadTimeout)
	}
}

// abort ends the connection with reply, written by the server itself
// through the TLS layer when there is one (go-smtp is blocked reading and
// gets EOF next). Before an implicit-TLS handshake is done nothing is
// written.
func (c *trackedConn) abort(reason string, reply *smtp.SMTPError) {
	if !c.dead.CompareAndSwap(false, true) {
		return
	}
	c.s.metrics.closed.WithLabelValues(reason).Inc()
	c.s.log.Info("connection closed", slog.String("conn", c.connID), slog.String("remote", c.client.String()),
		slog.String("reason", reason), slog.String("reply", replyText(reply)))
	var w io.Writer
	switch t := c.tlsConn.Load(); {
	case t != nil:
		w = t
	case !c.implicitTLS:
		w = c
	default:
		return
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	_, _ = w.Write(replyLine(reply)) // after any replies still held
	_ = c.flush()
	c.linger.Store(true)
}

// Lingering close after an abort: the client is usually still sending,
// and closing a socket with unread input sends a TCP RST that can destroy
// the reply just written before the client reads it. So the write side is
// shut first, then input is discarded for a moment (bounded in time and
// bytes, so a hostile client gains at most lingerTime per connection).
const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// setTLS records the TLS layer once its handshake is complete (implicit
// TLS, or STARTTLS seen by the next session).
func (c *trackedConn) setTLS(t *tls.Conn) {
	if c.tlsConn.Swap(t) == nil && !c.implicitTLS {
		c.useful() // STARTTLS completed
	}
}

// useful records progress that restarts the idle limit.
func (c *trackedConn) useful() {
	c.lastUseful.Store(time.Now().UnixNano())
	c.cmdBytes.Store(0)
}

// progress records a session event that restarts the command budget but
// not the idle limit (RSET, EHLO).
func (c *trackedConn) progress() { c.cmdBytes.Store(0) }

// startData enters a message transfer: DATA (inData) or BDAT chunks, which
// go-smtp reads as commands, so they stay under the command budget and the
// session credits what it consumes.
func (c *trackedConn) startData(bdat bool) {
	c.useful()
	c.dataUntil.Store(time.Now().Add(c.s.cfg.MaxDataTime).UnixNano())
	c.inData.Store(!bdat)
}

// endData leaves the message transfer (after go-smtp's reply to it).
func (c *trackedConn) endData() {
	c.inData.Store(false)
	c.dataUntil.Store(0)
}

// Close implements net.Conn: it sends the replies held and forgets the
// connection.
func (c *trackedConn) Close() error {
	c.flushBeforeClose()
	if c.linger.CompareAndSwap(true, false) {
		// Still counted against the client's connection limit meanwhile.
		if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
	}
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.counter.release(c.key)
	})
	return c.Conn.Close()
}

// tracked returns the trackedConn under c (through TLS), or nil.
func tracked(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}
