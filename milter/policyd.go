package milter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/gate"
)

// Defaults of PolicydConfig's request bounds.
const (
	DefaultMaxLineBytes    = 2048
	DefaultMaxAttributes   = 64
	DefaultMaxRequestBytes = 16 << 10
)

// PolicydConfig configures the Postfix policy delegation server.
type PolicydConfig struct {
	// Unauthenticated is "dunno" (a request without sasl_username is left
	// to the following restrictions) or "reject" (REJECT 5.7.1
	// authentication required). Any other value rejects: fail closed.
	Unauthenticated string
	// MaxLineBytes, MaxAttributes and MaxRequestBytes bound one request;
	// zero means the defaults (2 KiB, 64, 16 KiB). Past a bound the server
	// answers DEFER_IF_PERMIT and closes the connection.
	MaxLineBytes, MaxAttributes, MaxRequestBytes int
	// IdleTimeout closes a connection that sends nothing for this long;
	// WriteTimeout bounds each write. Zero means the defaults.
	IdleTimeout, WriteTimeout time.Duration
	// Logger gets refusals and protocol errors; nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives the sendergate_policyd_* metrics.
	Registerer prometheus.Registerer
	// LimitRecipients counts each recipient the service permits at RCPT
	// against the sending limits (past a limit: action 451 4.7.0). The
	// service never learns whether the message was then sent, so a
	// recipient counts once permitted. Leave it off when the milter
	// gate is in the same Postfix chain: the milter counts them (and
	// gives back those of messages not accepted), and a recipient must
	// count once.
	LimitRecipients bool
}

// PolicyServer answers Postfix check_policy_service requests. It sees the
// SMTP envelope only: the header From and signing need the milter.
type PolicyServer struct {
	cfg     PolicydConfig
	lim     limits
	stage   Stage
	log     *slog.Logger
	metrics *policydMetrics

	mu sync.Mutex
	ln *deadlineListener
	wg sync.WaitGroup
}

// NewPolicyd returns a policy delegation server deciding with stage.
func NewPolicyd(cfg PolicydConfig, stage Stage) *PolicyServer {
	lim := limits{maxLine: cfg.MaxLineBytes, maxAttrs: cfg.MaxAttributes, maxBytes: cfg.MaxRequestBytes}
	if lim.maxLine <= 0 {
		lim.maxLine = DefaultMaxLineBytes
	}
	if lim.maxAttrs <= 0 {
		lim.maxAttrs = DefaultMaxAttributes
	}
	if lim.maxBytes <= 0 {
		lim.maxBytes = DefaultMaxRequestBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	s := &PolicyServer{cfg: cfg, lim: lim, stage: stage, log: cfg.Logger, metrics: newPolicydMetrics(cfg.Registerer)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Serve answers connections on l until Close; it returns nil after Close.
func (s *PolicyServer) Serve(l net.Listener) error {
	dl := newDeadlineListener(l, s.cfg.IdleTimeout, s.cfg.WriteTimeout)
	s.mu.Lock()
	s.ln = dl
	s.mu.Unlock()
	for {
		c, err := dl.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("policyd: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// handlers to return.
func (s *PolicyServer) Close() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := ln.closeAll()
	s.wg.Wait()
	return err
}

// serveConn answers requests until the peer closes or errs. Replies are
// flushed when no further request is already buffered, so a pipelining
// client gets them in batches.
func (s *PolicyServer) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, max(4096, s.lim.maxLine+2))
	w := bufio.NewWriter(c)
	for {
		req, err := parseRequest(r, s.lim)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.protocolError(c, w, err)
			}
			w.Flush()
			return
		}
		action := s.decide(req)
		if _, err := fmt.Fprintf(w, "action=%s\n\n", action); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// protocolError answers a refused request with DEFER_IF_PERMIT before the
// connection is closed, so Postfix fails closed and reconnects.
func (s *PolicyServer) protocolError(c net.Conn, w *bufio.Writer, err error) {
	s.metrics.errors.Inc()
	var ne net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout()) {
		s.log.Debug("policyd: connection ended inside a request", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	s.log.Warn("policyd: refused request", "remote", c.RemoteAddr().String(), "err", err)
	fmt.Fprintf(w, "action=DEFER_IF_PERMIT 4.3.0 %s\n\n", sanitize(err.Error()))
}

// decide returns the action for one request (SMTPD_POLICY_README
// "Policy server response"); only the envelope sender is checked.
func (s *PolicyServer) decide(req request) string {
	action, kind := s.action(req)
	s.metrics.requests.WithLabelValues(kind).Inc()
	if kind != "dunno" {
		s.log.Info("policyd refusal", "queue_id", req.queueID, "account", req.saslUsername, "sender", req.sender,
			"recipient", req.recipient, "client", req.clientAddress, "action", action)
	}
	return action
}

func (s *PolicyServer) action(req request) (action, kind string) {
	const dunno = "DUNNO"
	reject := func(text string) (string, string) { return "REJECT 5.7.1 " + sanitize(text), "reject" }
	deferIt := func(text string) (string, string) {
		return "DEFER_IF_PERMIT 4.3.0 " + sanitize(text), "defer_if_permit"
	}
	if req.request != "smtpd_access_policy" {
		return deferIt(fmt.Sprintf("unsupported policy request %q", req.request))
	}
	if req.saslUsername == "" {
		if s.cfg.Unauthenticated == "dunno" || s.cfg.Unauthenticated == "" {
			return dunno, "dunno"
		}
		return reject("authentication required")
	}
	if _, ref := s.stage.Sender(req.saslUsername, req.sender); ref != nil {
		if ref.Temporary() {
			return deferIt(ref.Text)
		}
		return reject(ref.Text)
	}
	if req.protocolState == "RCPT" {
		// SMTPD_POLICY_README: an "NNN text" action defers (4xx) or
		// rejects (5xx) this recipient whatever later restrictions say.
		env := &gate.Envelope{Username: req.saslUsername, Rcpts: []string{req.recipient}}
		if req.recipient == "" {
			env.Rcpts = nil
		}
		var ref *gate.Refusal
		if s.cfg.LimitRecipients {
			_, ref = s.stage.Recipients(context.Background(), env, 1)
		} else {
			ref = s.stage.Suppressed(env)
		}
		if ref != nil {
			reason := "limit"
			if !ref.Temporary() {
				reason = "suppressed"
			}
			return fmt.Sprintf("%d %s %s", ref.Code, enhanced(ref.Enhanced), sanitize(ref.Text)), reason
		}
	}
	return dunno, "dunno"
}

// sanitize keeps a reply text on one line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return ' '
		}
		return r
	}, s)
}
