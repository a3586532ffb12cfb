// Package webhooks delivers the organizations' webhook events: it leases
// due deliveries from the store, POSTs them signed with HMAC-SHA256
// (header Sendergate-Signature: t=UNIX,v1=HEX, Stripe's scheme) and
// retries with exponential backoff for 24 hours.
package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/store"
)

// Sign returns the Sendergate-Signature header value for body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Sendergate-Signature header against body: one v1
// signature must match and its timestamp be within tolerance of now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhooks: signature has no timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhooks: signature timestamp outside tolerance")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("webhooks: no matching v1 signature")
}

// ErrForbiddenTarget means a URL's host is or resolves to a loopback,
// private, link-local, unspecified, multicast or CGNAT address.
var ErrForbiddenTarget = errors.New("webhooks: target address not allowed")

// forbiddenPrefixes are special-purpose ranges (RFC 6890) that the
// netip predicates do not cover: "this network" (Linux connects 0.0.0.0/8
// to the host itself), CGNAT, IETF protocol assignments, benchmarking,
// reserved (and broadcast), the NAT64 local-use prefix and deprecated
// IPv6 site-local addresses.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("fec0::/10"),
}

// nat64 is the well-known NAT64 prefix (RFC 6052 2.1): the last 32 bits are
// the IPv4 address the gateway connects to.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Forbidden reports whether ip may not be called without AllowPrivate:
// loopback, private, link-local, unspecified, multicast and the
// special-purpose ranges above, also when embedded in an IPv4-mapped or a
// NAT64 IPv6 address.
func Forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckURL validates a webhook URL: http(s) with a host and, unless
// allowPrivate, a host that is not a forbidden IP literal or "localhost"
// (names are checked again at each dial).
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("webhooks: url must be an http or https URL with a host")
	}
	if allowPrivate {
		return nil
	}
	h := u.Hostname()
	if ip, err := netip.ParseAddr(h); err == nil && Forbidden(ip) {
		return ErrForbiddenTarget
	}
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return ErrForbiddenTarget
	}
	return nil
}

// Options configure a Deliverer.
type Options struct {
	// Store holds the webhooks and their delivery queue.
	Store *store.Store
	// AllowPrivate is webhooks.allow_private: targets may be loopback,
	// private or link-local addresses (off: refused at every dial).
	AllowPrivate bool
	// Owner names this Deliverer in the leases it takes (default a new id);
	// each running Deliverer needs its own.
	Owner string
	// Logger receives a warning when a round of deliveries fails.
	Logger *slog.Logger
	// Now is the clock (default time.Now): due times, leases, signatures.
	Now func() time.Time
	// Backoff returns the wait after the n-th failed attempt (n from 1);
	// nil: DefaultBackoff.
	Backoff func(n int) time.Duration
	// Poll is how often the store is asked for due deliveries (default 1 s);
	// a round that leased a full batch is followed by the next at once.
	Poll time.Duration
	// Parallel is how many webhooks a round sends to at once (default 8).
	Parallel int
	// Timeout bounds one attempt, from dial to the end of the reply
	// (default DefaultTimeout; at most 40 s, to fit in a lease).
	Timeout time.Duration
	// Resolver looks up target host names (nil: the system's). The
	// resolved addresses are checked at dial, so a name resolving to a
	// private address is refused like the address itself.
	Resolver *net.Resolver
	// Registerer receives the deliveries counter (nil: not registered).
	Registerer prometheus.Registerer
}

// Deliverer POSTs due webhook deliveries. Several Deliverers, in one
// process or in several sharing a database, may run at once: a delivery is
// leased to one of them, and attempted only while its lease lasts.
type Deliverer struct {
	opts    Options
	client  *http.Client
	results *prometheus.CounterVec
}

// Retention is how long a delivery is retried after its creation.
const Retention = 24 * time.Hour

// batch is how many deliveries a round leases.
const batch = 50

// maxResponse is how much of a response is read.
const maxResponse = 64 << 10

// Lease timing: a round leases its deliveries for leaseFor, and a delivery
// is attempted only if the attempt (at most Options.Timeout, then the
// store update) ends before its lease does. A slow receiver can thus make
// a round skip its last deliveries (they are leased again once the lease
// runs out), but never lets another Deliverer lease a delivery whose POST
// is still in flight.
const (
	leaseFor     = time.Minute
	finishMargin = 5 * time.Second
)

// DefaultTimeout bounds one attempt: connecting, sending, the reply.
const DefaultTimeout = 10 * time.Second

// New returns a Deliverer.
func New(opts Options) *Deliverer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	opts.Timeout = min(opts.Timeout, leaseFor-finishMargin-15*time.Second)
	if opts.Owner == "" {
		opts.Owner = store.NewID()
	}
	d := &Deliverer{opts: opts}
	d.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_webhook_deliveries_total", Help: "Webhook delivery attempts by result: delivered, retry (a retry is scheduled), failed (given up after Retention).",
	}, []string{"result"})
	if opts.Registerer != nil {
		_ = opts.Registerer.Register(d.results)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Resolver: opts.Resolver}
	if !opts.AllowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("webhooks: dial %s: %w", address, err)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || Forbidden(ip) {
				return fmt.Errorf("%w: %s", ErrForbiddenTarget, host)
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second, MaxIdleConns: 10}
	d.client = &http.Client{
		Transport:     tr,
		Timeout:       opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d
}

// DefaultBackoff is 30 s doubling per attempt, capped at 1 h, plus up to
// 10 % jitter.
func DefaultBackoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return d + time.Duration(rand.Int64N(int64(d/10)+1))
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Poll)
	defer t.Stop()
	for {
		n, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.opts.Logger.Warn("webhook deliveries", "err", err)
		}
		if n == batch && err == nil && ctx.Err() == nil {
			continue // a backlog: no pause between full rounds
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce leases the due deliveries and attempts each once while its
// lease lasts; it returns how many it attempted. Up to Parallel webhooks
// are sent to at once, each one's deliveries one after the other, so a
// receiver that hangs holds up its own deliveries only.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	now := d.opts.Now()
	ds, err := d.opts.Store.LeaseDueDeliveries(ctx, d.opts.Owner, now, now.Add(leaseFor), batch)
	if err != nil {
		return 0, fmt.Errorf("webhooks: lease deliveries: %w", err)
	}
	var hooks []string
	byHook := map[string][]store.Delivery{}
	for _, dl := range ds {
		if byHook[dl.WebhookID] == nil {
			hooks = append(hooks, dl.WebhookID)
		}
		byHook[dl.WebhookID] = append(byHook[dl.WebhookID], dl)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		n        int
		firstErr error
	)
	sem := make(chan struct{}, d.opts.Parallel)
	for _, h := range hooks {
		sem <- struct{}{}
		wg.Add(1)
		go func(rows []store.Delivery) {
			defer func() { <-sem; wg.Done() }()
			for _, dl := range rows {
				if d.opts.Now().Add(d.opts.Timeout + finishMargin).After(dl.LeaseUntil.Time) {
					return // too late in the lease: leased again once it runs out
				}
				timedOut, err := d.attempt(ctx, dl)
				mu.Lock()
				n++
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil || timedOut {
					return // a receiver that timed out: its other deliveries wait for the next lease
				}
			}
		}(byHook[h])
	}
	wg.Wait()
	return n, firstErr
}

// attempt POSTs one delivery and records the result; timedOut reports an
// attempt that ran into the timeout.
func (d *Deliverer) attempt(ctx context.Context, dl store.Delivery) (timedOut bool, err error) {
	w, err := d.opts.Store.WebhookByID(ctx, dl.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // deleted meanwhile: the cascade removed the delivery
	}
	if err != nil {
		return false, fmt.Errorf("webhooks: delivery %s: %w", dl.ID, err)
	}
	code, errText, timedOut := d.post(ctx, w, dl)
	now := d.opts.Now()
	status, next, result := store.DeliveryDelivered, time.Time{}, "delivered"
	if errText != "" {
		status, result = store.DeliveryPending, "retry"
		next = now.Add(d.opts.Backoff(dl.Attempts + 1))
		if next.After(dl.CreatedAt.Add(Retention)) {
			status, result = store.DeliveryFailed, "failed"
		}
	}
	d.results.WithLabelValues(result).Inc()
	held, err := d.opts.Store.FinishAttempt(ctx, dl.ID, d.opts.Owner, status, code, errText, now, next)
	if err != nil {
		return timedOut, fmt.Errorf("webhooks: delivery %s: %w", dl.ID, err)
	}
	if !held {
		d.opts.Logger.Warn("webhook delivery lease lost before its attempt was recorded", "delivery", dl.ID, "webhook", dl.WebhookID)
	}
	return timedOut, nil
}

// post sends one delivery; errText is empty on a 2xx reply, timedOut
// reports a request that ran into the timeout.
func (d *Deliverer) post(ctx context.Context, w store.Webhook, dl store.Delivery) (code int, errText string, timedOut bool) {
	body := []byte(dl.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error(), false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sendergate-webhooks")
	req.Header.Set("Sendergate-Signature", Sign(w.Secret, d.opts.Now(), body))
	req.Header.Set("Sendergate-Event", dl.Event)
	req.Header.Set("Sendergate-Delivery", dl.ID)
	resp, err := d.client.Do(req)
	if err != nil {
		var ne net.Error
		return 0, err.Error(), errors.As(err, &ne) && ne.Timeout()
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	var ne net.Error
	timedOut = errors.As(err, &ne) && ne.Timeout()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, "HTTP " + resp.Status, timedOut
	}
	return resp.StatusCode, "", timedOut
}
