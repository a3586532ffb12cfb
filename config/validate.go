package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sendergate/sendergate/dnsname"
	"github.com/sendergate/sendergate/limits"
)

// MinVerifyInterval is the smallest accepted dns.verify_interval. It is
// low so that tests can run the re-check loop; production uses hours.
const MinVerifyInterval = 10 * time.Second

// FieldError is one invalid configuration key.
type FieldError struct {
	Key string // dotted TOML key, e.g. "submission.max_recipients"
	Msg string
}

// Error returns "config: KEY: MSG".
func (e *FieldError) Error() string { return "config: " + e.Key + ": " + e.Msg }

// Errors is every problem found in a configuration; Load and Validate
// return it so that the CLI can print all of them on one line.
type Errors []error

// Error joins the problems with "; ".
func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

// Unwrap returns the individual problems for errors.Is and errors.As.
func (e Errors) Unwrap() []error { return e }

// checker collects FieldErrors.
type checker struct{ errs Errors }

func (c *checker) add(key, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// check adds err, if any, under key.
func (c *checker) check(key string, err error) {
	if err != nil {
		c.add(key, "%v", err)
	}
}

// Validate reports every invalid key at once as Errors, or nil.
func (c *Config) Validate() error {
	var v checker
	if c.MemoryLimitBytes != 0 && c.MemoryLimitBytes < 64<<20 {
		v.add("memory_limit_bytes", "%d must be 0 (no limit) or at least 67108864 (64 MiB)", c.MemoryLimitBytes)
	}
	if c.DataDir == "" {
		v.add("data_dir", "must not be empty")
	}
	if _, _, err := c.DatabaseDriver(); err != nil {
		v.check("database", err)
	}
	v.check("hostname", checkHostname(c.Hostname))
	c.Submission.validate(&v)
	c.Relay.validate(&v)
	c.Admin.validate(&v)
	c.DNS.validate(&v)
	v.check("milter.listen", checkGateListen(c.Milter.Listen))
	checkPrefixes(&v, "milter.peers", c.Milter.Peers)
	v.check("milter.unauthenticated", oneOf(c.Milter.Unauthenticated, "accept", "reject"))
	v.check("policyd.listen", checkGateListen(c.Policyd.Listen))
	checkPrefixes(&v, "policyd.peers", c.Policyd.Peers)
	v.check("policyd.unauthenticated", oneOf(c.Policyd.Unauthenticated, "dunno", "reject"))
	v.check("sandbox.zone", checkHostname(c.Sandbox.Zone))
	if checkHostname(c.Sandbox.Zone) == nil && checkHostname(c.DNS.Zone) == nil &&
		!strings.HasSuffix(c.Sandbox.Zone, "."+c.DNS.Zone) {
		v.add("sandbox.zone", "%q must be a subdomain of dns.zone %q", c.Sandbox.Zone, c.DNS.Zone)
	}
	if c.Sandbox.DailyLimit < 0 {
		v.add("sandbox.daily_limit", "must be 0 (sandbox sending off) or more")
	}
	v.check("debug.listen", checkLoopbackListen(c.Debug.Listen))
	c.Limits.validate(&v)
	v.check("confirm.from", checkEmail(c.Confirm.From))
	if c.Confirm.TTL.Duration <= 0 {
		v.add("confirm.ttl", "must be positive")
	}
	c.Bounce.validate(&v)
	c.Suppression.validate(&v)
	c.DKIM.validate(&v)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (b *Bounce) validate(v *checker) {
	v.check("bounce.listen", checkListen(b.Listen, true))
	if b.MaxMessageBytes < 1024 {
		v.add("bounce.max_message_bytes", "must be at least 1024")
	}
	if b.MaxAge.Duration < time.Hour {
		v.add("bounce.max_age", "must be at least 1h")
	}
}

func (s *Suppression) validate(v *checker) {
	if s.SoftLimit < 1 {
		v.add("suppression.soft_limit", "must be 1 or more")
	}
	if s.SoftWindow.Duration <= 0 {
		v.add("suppression.soft_window", "must be positive")
	}
	if s.TTL.Duration < 0 {
		v.add("suppression.ttl", "must be 0 (never expires) or positive")
	}
}

func (d *DKIM) validate(v *checker) {
	if d.RotateInterval.Duration < 0 || (d.RotateInterval.Duration > 0 && d.RotateInterval.Duration < time.Minute) {
		v.add("dkim.rotate_interval", "must be 0 (off) or at least 1m")
	}
	if d.RetireAfter.Duration < time.Minute {
		v.add("dkim.retire_after", "must be at least 1m")
	}
	// A retire_after longer than rotate_interval is allowed: the retired
	// key holds the second selector until it is removed, so rotations
	// then come every retire_after (plus the check) instead.
}

func (s *Submission) validate(v *checker) {
	v.check("submission.listen", checkListen(s.Listen, false))
	v.check("submission.listen_tls", checkListen(s.ListenTLS, true))
	if (s.TLSCert == "") != (s.TLSKey == "") {
		key := "submission.tls_key"
		if s.TLSCert == "" {
			key = "submission.tls_cert"
		}
		v.add(key, "tls_cert and tls_key must be set together")
	}
	if s.MaxMessageBytes < 1024 {
		v.add("submission.max_message_bytes", "must be at least 1024")
	}
	if s.MaxRecipients < 1 {
		v.add("submission.max_recipients", "must be at least 1")
	}
	if s.MaxConnections < 1 {
		v.add("submission.max_connections", "must be at least 1")
	}
	if s.MaxConnectionsPerIP < 1 {
		v.add("submission.max_connections_per_ip", "must be at least 1")
	} else if s.MaxConnections >= 1 && s.MaxConnectionsPerIP > s.MaxConnections {
		v.add("submission.max_connections_per_ip", "%d must not exceed submission.max_connections (%d)", s.MaxConnectionsPerIP, s.MaxConnections)
	}
	if s.MaxBufferedBytes < s.MaxMessageBytes {
		v.add("submission.max_buffered_bytes", "%d must be at least submission.max_message_bytes (%d)", s.MaxBufferedBytes, s.MaxMessageBytes)
	}
	checkPrefixes(v, "submission.proxy_from", s.ProxyFrom)
}

func (r *Relay) validate(v *checker) {
	if r.Upstream != "" {
		v.check("relay.upstream", checkHostPort(r.Upstream, true))
	}
	v.check("relay.upstream_tls", oneOf(r.UpstreamTLS, "none", "starttls", "tls"))
	if (r.Username == "") != (r.Password == "") {
		key := "relay.password"
		if r.Username == "" {
			key = "relay.username"
		}
		v.add(key, "username and password must be set together")
	}
}

func (a *Admin) validate(v *checker) {
	v.check("admin.listen", checkListen(a.Listen, false))
	u, err := url.Parse(a.PublicURL)
	switch {
	case err != nil:
		v.add("admin.public_url", "%v", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add("admin.public_url", "%q must be an absolute http:// or https:// URL", a.PublicURL)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		v.add("admin.public_url", "%q must have no user, query or fragment", a.PublicURL)
	}
}

func (d *DNS) validate(v *checker) {
	v.check("dns.zone", checkHostname(d.Zone))
	v.check("dns.listen", checkListen(d.Listen, false))
	if len(d.Nameservers) == 0 {
		v.add("dns.nameservers", "must list at least one name server")
	}
	for i, ns := range d.Nameservers {
		v.check(fmt.Sprintf("dns.nameservers[%d]", i), checkHostname(ns))
	}
	for i, r := range d.Resolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			v.add(fmt.Sprintf("dns.resolvers[%d]", i), "%q must be ip:port (IPv6 as [ip]:port)", r)
		}
	}
	v.check("dns.bounce_mx", checkHostname(d.BounceMX))
	if d.SPF != "v=spf1" && !strings.HasPrefix(d.SPF, "v=spf1 ") { // RFC 7208 4.5
		v.add("dns.spf", "%q must start with \"v=spf1 \"", d.SPF)
	}
	checkPrefixes(v, "dns.allow_transfer", d.AllowTransfer)
	for i, n := range d.Notify {
		if _, err := netip.ParseAddrPort(n); err != nil {
			v.add(fmt.Sprintf("dns.notify[%d]", i), "%q must be ip:port (IPv6 as [ip]:port)", n)
		}
	}
	for name, ips := range d.NameserverAddresses {
		key := fmt.Sprintf("dns.nameserver_addresses.%q", name)
		if !containsName(d.Nameservers, name) {
			v.add(key, "%q is not one of dns.nameservers", name)
		}
		checkAddrs(v, key, ips)
	}
	checkAddrs(v, "dns.bounce_mx_addresses", d.BounceMXAddresses)
	for key, t := range map[string]Duration{"dns.soa_refresh": d.SOARefresh, "dns.soa_retry": d.SOARetry,
		"dns.soa_expire": d.SOAExpire, "dns.soa_minimum": d.SOAMinimum} {
		if t.Duration < time.Second || t.Duration > 1<<31*time.Second {
			v.add(key, "must be between 1s and 68 years")
		}
	}
	if d.CheckQPS < 1 {
		v.add("dns.check_qps", "must be at least 1")
	}
	if d.TrackingAddress != "" {
		if _, err := netip.ParseAddr(d.TrackingAddress); err != nil {
			v.add("dns.tracking_address", "%q must be an IP address or empty", d.TrackingAddress)
		}
	}
	if d.VerifyInterval.Duration < MinVerifyInterval {
		v.add("dns.verify_interval", "must be at least %s", MinVerifyInterval)
	}
	if d.Grace.Duration <= 0 {
		v.add("dns.grace", "must be positive")
	}
}

// checkPrefixes checks a list of IP addresses or CIDR prefixes.
func checkPrefixes(v *checker, key string, list []string) {
	for i, a := range list {
		if _, err := netip.ParseAddr(a); err != nil {
			if _, err := netip.ParsePrefix(a); err != nil {
				v.add(fmt.Sprintf("%s[%d]", key, i), "%q must be an IP address or CIDR prefix", a)
			}
		}
	}
}

// checkAddrs checks a list of IP addresses.
func checkAddrs(v *checker, key string, list []string) {
	for i, a := range list {
		if _, err := netip.ParseAddr(a); err != nil {
			v.add(fmt.Sprintf("%s[%d]", key, i), "%q must be an IP address", a)
		}
	}
}

func containsName(list []string, name string) bool {
	for _, n := range list {
		if n == name {
			return true
		}
	}
	return false
}

// checkGateListen checks the listen address of the milter or the policy
// service: empty (off), "host:port", or "unix:/absolute/path".
func checkGateListen(addr string) error {
	if unix, err := checkUnixSocket(addr, "milter.sock"); unix {
		return err
	}
	return checkListen(addr, true)
}

// checkUnixSocket reports whether addr is a "unix:" address and, if so,
// whether its path is absolute; example names a socket file for the
// error's sample path.
func checkUnixSocket(addr, example string) (unix bool, err error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return false, nil
	}
	if !strings.HasPrefix(path, "/") {
		return true, fmt.Errorf("%q: a unix socket path must be absolute (unix:/run/sendergate/%s)", addr, example)
	}
	return true, nil
}

// checkLoopbackListen checks debug.listen: empty (off), a loopback IP
// and port, or "unix:/absolute/path", since profiles show the daemon's
// internals and cost CPU on demand.
func checkLoopbackListen(addr string) error {
	if addr == "" {
		return nil
	}
	if unix, err := checkUnixSocket(addr, "debug.sock"); unix {
		return err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be ip:port on loopback, e.g. 127.0.0.1:6060, or unix:/absolute/path", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the profiling listener serves only 127.0.0.1 or [::1] (reach it from elsewhere through an SSH tunnel)", addr)
	}
	return nil
}

// checkListen checks a listen address "host:port" (host may be empty for
// every interface; port 0 picks a free port). Empty is allowed when
// optional.
func checkListen(addr string, optional bool) error {
	if addr == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("must not be empty (host:port)")
	}
	return checkHostPort(addr, false)
}

// checkHostPort checks "host:port" with a numeric port; dial addresses
// need a host and a non-zero port.
func checkHostPort(addr string, dial bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be host:port (IPv6 as [ip]:port)", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (dial && n == 0) {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	if host == "" {
		if dial {
			return fmt.Errorf("%q: missing host", addr)
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if err := checkHostname(host); err != nil {
		return fmt.Errorf("%q: bad host: %w", addr, err)
	}
	return nil
}

// checkHostname checks an ASCII DNS host name with dnsname.Normalize, the
// rules domain registration and mail use too (RFC 1123 2.1 LDH labels of
// 1-63 octets, at most 253 octets, "--" in the third and fourth positions
// only in valid xn-- A-labels). Internationalized names must be given as
// A-labels, and without the trailing dot, since the value is used as
// written.
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("must not be empty")
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return fmt.Errorf("%+q: use the punycode A-label (xn--...) for an internationalized name", name)
		}
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("%q: write the name without the trailing dot", name)
	}
	if _, err := dnsname.Normalize(name); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	return nil
}

// checkEmail checks a bare addr-spec (RFC 5322 3.4.1) with a host name
// domain, as used in an envelope and a From header.
func checkEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return fmt.Errorf("%q must be a bare email address like no-reply@example.com", s)
	}
	at := strings.LastIndexByte(s, '@')
	if err := checkHostname(s[at+1:]); err != nil {
		return fmt.Errorf("domain of %q: %w", s, err)
	}
	return nil
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q must be one of %s", s, strings.Join(allowed, ", "))
}

// DatabaseDriver returns the database/sql driver name and its DSN for
// database: "sqlite:PATH" or "sqlite://PATH" give ("sqlite", PATH) for
// modernc.org/sqlite; "postgres://..." and "postgresql://..." give
// ("postgres", the URL unchanged) for lib/pq.
func (c *Config) DatabaseDriver() (driver, dsn string, err error) {
	db := c.Database
	switch {
	case strings.HasPrefix(db, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(db, "sqlite:"), "//")
		if path == "" {
			return "", "", fmt.Errorf("%q: no database file path after the sqlite prefix", db)
		}
		return "sqlite", path, nil
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		u, err := url.Parse(db)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return "", "", fmt.Errorf("bad PostgreSQL URL: %w", err)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return "", "", fmt.Errorf("PostgreSQL URL has no host")
		}
		return "postgres", db, nil
	case db == "":
		return "", "", fmt.Errorf("must not be empty")
	default:
		return "", "", fmt.Errorf("must start with sqlite: or postgres:// (got %q)", redact(db))
	}
}

// redact hides a password that might sit in an unrecognized URL.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

func (l *Limits) validate(v *checker) {
	for _, f := range []struct {
		key string
		n   int64
	}{
		{"limits.org_per_minute", l.OrgPerMinute}, {"limits.org_per_hour", l.OrgPerHour}, {"limits.org_per_day", l.OrgPerDay},
		{"limits.account_per_minute", l.AccountPerMinute}, {"limits.account_per_hour", l.AccountPerHour},
		{"limits.account_per_day", l.AccountPerDay}, {"limits.new_account_per_day", l.NewAccountPerDay},
	} {
		if f.n < 0 || f.n > limits.MaxLimit {
			v.add(f.key, "must be 0 (no limit) to %d recipients", int64(limits.MaxLimit))
		}
	}
	if l.NewAccountAge.Duration < 0 {
		v.add("limits.new_account_age", "must not be negative")
	}
}
