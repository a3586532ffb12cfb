package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/bounce"
	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/internal/gatelisten"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/milter"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/smtpd"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/zone"
)

// daemon is everything serve runs, wired together.
type daemon struct {
	cfg      config.Config
	log      *slog.Logger
	st       *store.Store
	reg      *prometheus.Registry
	engine   *policy.Engine
	gate     *gate.Gate
	limiter  *limits.Limiter
	zone     *zone.Server
	domains  *domains.Service
	out      relay.Sender
	tlsConf  *tls.Config
	adminKey string
	sysKey   crypto.Signer
	// bounceIDs MACs the bounce+ID@ envelope senders (bounce.verp key).
	bounceIDs *bounce.Codec
	// suppressions refuses suppressed recipients at RCPT; nil with
	// suppression.enforce off.
	suppressions gate.Suppressions
	// syncSuppressions reads the suppression list changes into memory.
	syncSuppressions func(context.Context) error
	closers          []func(context.Context) error
	zoneOpts         domains.ZoneOptions
}

// serve starts every configured listener and blocks until ctx is done, then
// shuts down gracefully: stop accepting, finish what is in flight.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	d := &daemon{cfg: cfg, log: logger, st: st, reg: prometheus.NewRegistry()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	if err := d.setup(ctx, bg); err != nil {
		cancelBG() // the background loops end before their closers wait for them
		d.shutdown()
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down: no new connections, finishing transactions in flight")
	cancelBG()
	d.shutdown()
	logger.Info("stopped")
	return nil
}

func (d *daemon) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](ctx); err != nil {
			d.log.Warn("shutdown", "err", err)
		}
	}
}

func (d *daemon) onClose(f func(context.Context) error) { d.closers = append(d.closers, f) }

// setup builds and starts the components in dependency order.
func (d *daemon) setup(ctx, bg context.Context) error {
	cfg := d.cfg
	if err := d.setupDebug(); err != nil {
		return err
	}
	d.log.Info("DKIM RSA signer", "signer", dkim.RSASigner().Name, "detail", dkim.RSASigner().Detail)
	key, keyPath, created, err := adminKey(cfg.AdminKey, cfg.DataDir)
	if err != nil {
		return err
	}
	switch {
	case keyPath == "":
		d.log.Info("admin key from SENDERGATE_ADMIN_KEY")
	case created:
		d.log.Info("admin key created", "path", keyPath, "mode", "0600")
	default:
		d.log.Info("admin key", "path", keyPath)
	}
	d.adminKey = key

	cert, certPath, err := tlsCertificate(cfg.Submission.TLSCert, cfg.Submission.TLSKey, cfg.DataDir, cfg.Hostname)
	if err != nil {
		return err
	}
	d.log.Info("TLS certificate", "path", certPath)
	d.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	if err := d.setupRelay(); err != nil {
		return err
	}
	if err := d.setupSystemKey(ctx); err != nil {
		return err
	}
	if err := d.setupBounceKey(ctx); err != nil {
		return err
	}
	if err := d.setupZone(); err != nil {
		return err
	}

	if n, err := d.st.FillDKIMTXT(ctx); err != nil {
		return err
	} else if n > 0 {
		d.log.Info("stored the public DKIM TXT value of domains created before it was kept", "domains", n)
	}
	// The snapshot and the zone come from one read of the store; after the
	// first, only the organizations the change log names are read again.
	// The zone is loaded whole at start, then patched per changed
	// organization; its serial is the zone version kept in the database
	// (the state version of the last change that touched the zone), so
	// every instance serving the same data gives the same serial.
	d.engine = loader.NewEngine(d.st, cfg.DNS.Zone, d.zone, d.zoneOpts, policy.Options{
		RequireConfirmed: cfg.Submission.RequireConfirmedAddress, Logger: d.log,
	})
	// Sending limits: counted here, settled with the store every second;
	// the last settlement (after the listeners closed) gives back every
	// slice this instance holds.
	d.limiter = limits.New(d.st, limits.Options{Logger: d.log, Registerer: d.reg})
	go d.limiter.Run(bg)
	d.onClose(d.limiter.Close)
	if err := d.setupSuppressions(ctx, bg); err != nil {
		return fmt.Errorf("suppression list: %w", err)
	}
	// One message stage for every adapter: they share its signing admission.
	d.gate = gate.New(d.engine, d.st, gate.Options{Hostname: cfg.Hostname, SandboxLimit: cfg.Sandbox.DailyLimit, Logger: d.log, Registerer: d.reg,
		Limiter: d.limiter, Limits: limitDefaults(cfg.Limits), BounceIDs: d.bounceIDs,
		Suppressions: d.suppressions})
	d.reg.MustRegister(newSnapshotCollector(d.engine)) // domains by status, snapshot generation and freshness
	if err := d.engine.Reload(ctx); err != nil {
		// Fail closed: mail gets 451 until a snapshot loads.
		d.log.Error("initial policy snapshot failed; mail is refused with 451 until it loads", "err", err)
	}
	// The full load's rows and records are garbage now: at a million
	// domains well over a GiB that the runtime would otherwise give back to
	// the system only over minutes.
	debug.FreeOSMemory()
	if n := cfg.MemoryLimitBytes; n > 0 {
		debug.SetMemoryLimit(n)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if used := ms.Sys - ms.HeapReleased; float64(used) > 0.9*float64(n) {
			// The runtime would collect nearly without pause (up to half the CPU).
			d.log.Warn("memory_limit_bytes leaves little room above what the loaded state takes; raise it", "bytes", n, "in_use", used)
		} else {
			d.log.Info("Go memory limit set (memory_limit_bytes)", "bytes", n, "in_use", used)
		}
	}
	go d.engine.Run(bg)
	go func() {
		// Keys are parsed on first use; loading them now (up to the key
		// cache's size) keeps signing independent of the database.
		if n, err := d.engine.WarmKeys(bg); err != nil && bg.Err() == nil {
			d.log.Warn("loading DKIM keys ahead of use stopped; the rest load on first use", "loaded", n, "err", err)
		}
	}()

	resolver, err := domains.NewDNSResolver(cfg.DNS.Resolvers, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dns.resolvers: %w", err)
	}
	from := "dns.resolvers"
	if len(cfg.DNS.Resolvers) == 0 {
		from = domains.ResolvConf
	}
	d.log.Info("customer records are verified through these DNS resolvers", "resolvers", strings.Join(resolver.Servers(), ","), "from", from)
	d.domains = domains.NewService(d.st, domains.ServiceOptions{
		Zone: cfg.DNS.Zone, Resolver: resolver, Interval: cfg.DNS.VerifyInterval.Duration, Grace: cfg.DNS.Grace.Duration, Logger: d.log,
		CheckQPS: cfg.DNS.CheckQPS, Registerer: d.reg,
		Served:      d.zoneOpts, // verification follows each CNAME to what the zone serves
		RetireAfter: cfg.DKIM.RetireAfter.Duration, RotateInterval: cfg.DKIM.RotateInterval.Duration,
	})
	d.setupRotation(bg) // DKIM keys: automatic rotation, removal of retired keys, metrics
	// The checker stops, its checks in flight ended and its leases given
	// back, before the store closes (serve closes it after every closer).
	checks, stopChecks := context.WithCancel(bg)
	checksDone := make(chan struct{})
	go func() {
		defer close(checksDone)
		d.domains.Run(checks, checkTick(cfg.DNS.VerifyInterval.Duration), d.changed)
	}()
	d.onClose(func(ctx context.Context) error {
		stopChecks()
		select {
		case <-checksDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("background domain checks did not stop: %w", ctx.Err())
		}
	})

	if err := d.setupMail(bg); err != nil {
		return err
	}
	if err := d.setupBounce(bg); err != nil {
		return err
	}
	return d.setupAdmin()
}

// checkTick is the longest the background checker waits between looks at
// its queue (it looks sooner when a planned check comes due); a look with
// nothing due costs one indexed query, so it can be short, and it bounds
// how late a check planned by another instance or the API is seen.
func checkTick(interval time.Duration) time.Duration {
	return min(5*time.Second, interval/2)
}

// changed applies a write at once in this process (other processes follow
// through the store's state version).
func (d *daemon) changed() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Only the organizations changed since the current snapshot are read;
	// concurrent writers coalesce on the engine's lock.
	if err := d.engine.Changed(ctx); err != nil {
		d.log.Error("policy snapshot refresh failed", "err", err)
	}
}

func (d *daemon) setupRelay() error {
	cfg := d.cfg
	if cfg.Relay.Upstream == "" {
		dir := filepath.Join(cfg.DataDir, "outbox")
		ob, err := relay.NewOutbox(dir)
		if err != nil {
			return err
		}
		d.out = ob.WithLogger(d.log)
		d.log.Info("no relay.upstream: accepted mail is written to the outbox", "dir", dir)
		return nil
	}
	host, _, _ := net.SplitHostPort(cfg.Relay.Upstream)
	up := relay.NewUpstream(relay.UpstreamConfig{
		Addr: cfg.Relay.Upstream, TLS: cfg.Relay.UpstreamTLS, TLSConfig: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12},
		Username: cfg.Relay.Username, Password: cfg.Relay.Password, LocalName: cfg.Hostname, Logger: d.log,
	})
	d.out = up
	d.onClose(func(context.Context) error { return up.Close() })
	d.log.Info("relaying accepted mail", "upstream", cfg.Relay.Upstream, "tls", cfg.Relay.UpstreamTLS)
	return nil
}

// setupSystemKey loads (or creates, once for all instances) sendergate's
// own DKIM key, published at sg1._domainkey.ZONE.
func (d *daemon) setupSystemKey(ctx context.Context) error {
	pemText, err := d.st.SystemKey(ctx, "dkim:"+d.cfg.DNS.Zone, func() (string, error) {
		k, err := dkim.GenerateKey(dkim.RSA2048)
		if err != nil {
			return "", err
		}
		return dkim.MarshalPrivateKey(k)
	})
	if err != nil {
		return err
	}
	d.sysKey, err = dkim.ParsePrivateKey(pemText)
	return err
}

// setupBounceKey loads the secret under which every instance MACs the
// bounce+ID@ envelope senders it writes (made on first start, shared
// through the database).
func (d *daemon) setupBounceKey(ctx context.Context) error {
	secret, err := d.st.SystemKey(ctx, "bounce:verp", func() (string, error) {
		var b [32]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]), nil
	})
	if err != nil {
		return fmt.Errorf("bounce key: %w", err)
	}
	key, err := hex.DecodeString(secret)
	if err != nil || len(key) < 16 {
		return fmt.Errorf("bounce key: stored secret is not hex of 16 bytes or more")
	}
	d.bounceIDs = bounce.NewCodec(key)
	return nil
}

func (d *daemon) setupZone() error {
	cfg := d.cfg
	d.zoneOpts = domains.ZoneOptions{Zone: cfg.DNS.Zone, BounceMX: cfg.DNS.BounceMX, SPF: cfg.DNS.SPF,
		TrackingAddress: cfg.DNS.TrackingAddress, SystemKey: d.sysKey.Public()}
	z, err := zone.New(zone.Config{Zone: cfg.DNS.Zone, Nameservers: cfg.DNS.Nameservers,
		NameserverAddresses: cfg.DNS.NameserverAddresses, BounceMX: cfg.DNS.BounceMX, BounceMXAddresses: cfg.DNS.BounceMXAddresses,
		AllowTransfer: cfg.DNS.AllowTransfer, Notify: cfg.DNS.Notify,
		Refresh: cfg.DNS.SOARefresh.Duration, Retry: cfg.DNS.SOARetry.Duration,
		Expire: cfg.DNS.SOAExpire.Duration, Minimum: cfg.DNS.SOAMinimum.Duration,
		Logger: d.log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	d.zone = z
	if cfg.DNS.Listen == "" {
		return nil
	}
	if err := z.Start(cfg.DNS.Listen); err != nil {
		return fmt.Errorf("dns.listen %s: %w", cfg.DNS.Listen, err)
	}
	d.onClose(z.Shutdown)
	d.log.Info("DNS zone server listening", "zone", cfg.DNS.Zone, "udp", z.UDPAddr().String(), "tcp", z.TCPAddr().String())
	return nil
}

func (d *daemon) setupAdmin() error {
	cfg := d.cfg
	addrs := addresses.New(d.st, addresses.Options{
		PublicURL: cfg.Admin.PublicURL, From: cfg.Confirm.From, TTL: cfg.Confirm.TTL.Duration, Hostname: cfg.Hostname,
		Sender: d.out, // d= is the zone: aligned (relaxed, RFC 7489 3.1.1) with confirm.from
		// in the zone, and published at sg1._domainkey.ZONE.
		Signer: addresses.Signer{Domain: cfg.DNS.Zone, Selector: "sg1", Key: d.sysKey},
		Logger: d.log,
	})
	srv, err := admin.New(admin.Options{
		Store: d.st, AdminKey: d.adminKey, PublicURL: cfg.Admin.PublicURL, Addresses: addrs, Zone: cfg.DNS.Zone,
		SandboxZone: cfg.Sandbox.Zone, Logger: d.log, WebhooksAllowPrivate: cfg.Webhooks.AllowPrivate,
		SuppressionsChanged: d.syncSuppressions,
		Metrics:             promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}),
		Ready: func(context.Context) error {
			_, err := d.engine.Current()
			return err
		},
		Changed: d.changed,
		Domains: d.domains,
		Limits:  d.limiter, LimitDefaults: limitDefaults(cfg.Limits),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	handler, err := admin.Instrument(srv.Handler(), d.reg)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("admin server failed", "err", err)
		}
	}()
	d.onClose(hs.Shutdown)
	d.log.Info("admin API listening", "addr", l.Addr().String(), "public_url", cfg.Admin.PublicURL)
	return nil
}

// setupMail starts the SMTP-facing listeners: submission (STARTTLS and
// implicit TLS), the milter gate and the Postfix policy service. Each
// listener is bound here, so a busy port stops serve at once with its key.
func (d *daemon) setupMail(bg context.Context) error {
	cfg := d.cfg
	sub, err := smtpd.New(smtpd.Config{
		Hostname: cfg.Hostname, TLSConfig: d.tlsConf, AllowInsecureAuth: cfg.Submission.AllowInsecureAuth,
		MaxMessageBytes: cfg.Submission.MaxMessageBytes, MaxRecipients: cfg.Submission.MaxRecipients,
		MaxConnections: cfg.Submission.MaxConnections, MaxConnectionsPerIP: cfg.Submission.MaxConnectionsPerIP,
		MaxBufferedBytes: cfg.Submission.MaxBufferedBytes, ProxyFrom: cfg.Submission.ProxyFrom,
		Logger: d.log, Registerer: d.reg, Gate: d.gate,
	}, d.engine, d.out)
	if err != nil {
		return err
	}
	if err := d.listen("submission.listen", cfg.Submission.Listen, sub.Serve); err != nil {
		return err
	}
	if err := d.listen("submission.listen_tls", cfg.Submission.ListenTLS, sub.ServeTLS); err != nil {
		return err
	}
	d.onClose(sub.Shutdown)

	if cfg.Milter.Listen != "" {
		m := milter.NewMilter(milter.MilterConfig{Unauthenticated: cfg.Milter.Unauthenticated,
			MaxMessageBytes: cfg.Submission.MaxMessageBytes, Logger: d.log, Registerer: d.reg}, d.gate)
		if err := d.listenGate("milter", cfg.Milter.Listen, cfg.Milter.Peers, cfg.Milter.SocketGroup, m.Serve); err != nil {
			return err
		}
		d.onClose(func(context.Context) error { return m.Close() })
	}
	if cfg.Policyd.Listen != "" {
		// With the milter on, it counts each recipient against the sending
		// limits (and gives back those of messages not accepted); the
		// policy service counts them only when it is alone.
		p := milter.NewPolicyd(milter.PolicydConfig{Unauthenticated: cfg.Policyd.Unauthenticated, Logger: d.log, Registerer: d.reg,
			LimitRecipients: cfg.Milter.Listen == ""}, d.gate)
		if err := d.listenGate("policyd", cfg.Policyd.Listen, cfg.Policyd.Peers, cfg.Policyd.SocketGroup, p.Serve); err != nil {
			return err
		}
		d.onClose(func(context.Context) error { return p.Close() })
	}
	return nil
}

// listen binds the TCP address addr (nothing when empty) and serves it in
// the background.
func (d *daemon) listen(key, addr string, serve func(net.Listener) error) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", key, addr, err)
	}
	d.log.Info("listening", "listener", key, "addr", l.Addr().String())
	d.serveOn(key, l, serve)
	return nil
}

// listenGate binds the listener of the milter (name "milter") or the
// policy service ("policyd") and serves it in the background. Their peer
// claims any SMTP account, so the listener is the trust boundary: over TCP
// it admits only peers (sendergate_<name>_peer_refused_total counts the
// others), a unix socket is mode 0660 owned by group.
func (d *daemon) listenGate(name, addr string, peers []string, group string, serve func(net.Listener) error) error {
	key := name + ".listen"
	prefixes, err := gatelisten.ParsePeers(peers)
	if err != nil {
		return fmt.Errorf("%s.peers: %w", name, err)
	}
	l, err := gatelisten.Listen(addr, gatelisten.Options{Name: name, Peers: prefixes, Group: group, Logger: d.log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("%s %s: %w", key, addr, err)
	}
	if strings.HasPrefix(addr, "unix:") {
		if group == "" {
			group = "(the daemon's)"
		}
		d.log.Info("listening", "listener", key, "addr", "unix:"+l.Addr().String(), "mode", "0660", "group", group)
	} else {
		d.log.Info("listening", "listener", key, "addr", l.Addr().String(), "peers", strings.Join(peers, ","))
	}
	d.serveOn(key, l, serve)
	return nil
}

// serveOn runs serve(l) in the background, logging why it stopped.
func (d *daemon) serveOn(key string, l net.Listener, serve func(net.Listener) error) {
	go func() {
		if err := serve(l); err != nil {
			d.log.Error("listener stopped", "listener", key, "err", err)
		}
	}()
}

// limitDefaults converts the [limits] section.
func limitDefaults(c config.Limits) limits.Defaults {
	return limits.Defaults{
		Org:              limits.Values{c.OrgPerMinute, c.OrgPerHour, c.OrgPerDay},
		Account:          limits.Values{c.AccountPerMinute, c.AccountPerHour, c.AccountPerDay},
		NewAccountPerDay: c.NewAccountPerDay, NewAccountAge: c.NewAccountAge.Duration,
	}
}
