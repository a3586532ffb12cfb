// Package config is sendergate's TOML configuration: one declarative
// struct, its defaults in one place (Default), loading with unknown keys
// refused (Load) and validation that reports every bad key at once
// (Validate). The format is TOML v1.0.0 (https://toml.io/en/v1.0.0),
// decoded with github.com/BurntSushi/toml; durations are Go duration
// strings ("30s", "1h", "72h").
//
// Loading order: Default(), then the file, then the environment
// (SENDERGATE_DATABASE, SENDERGATE_ADMIN_KEY), then Validate.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// DefaultPath is the file Load reads when given no path and it exists in
// the working directory.
const DefaultPath = "sendergate.toml"

// Environment variables that override the file.
const (
	EnvDatabase = "SENDERGATE_DATABASE"
	EnvAdminKey = "SENDERGATE_ADMIN_KEY"
)

// Duration is a time.Duration written in TOML as a Go duration string
// such as "30s", "1h" or "72h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (write e.g. \"30s\", \"10m\", \"72h\")", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in its shortest Go form: "1h", not
// "1h0m0s".
func (d Duration) MarshalText() ([]byte, error) {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return []byte(s), nil
}

// Config is the whole sendergate configuration. Field names follow the
// TOML keys documented in SPEC.md and sendergate.example.toml.
type Config struct {
	DataDir  string `toml:"data_dir"` // created on first start
	Database string `toml:"database"` // "sqlite:PATH" or "postgres://..."
	Hostname string `toml:"hostname"` // SMTP greeting and Received header
	// MemoryLimitBytes is the Go runtime's soft memory limit, set once the
	// first snapshot has loaded (the load's peak is given back first); 0:
	// none (GOMEMLIMIT from the environment still applies).
	MemoryLimitBytes int64       `toml:"memory_limit_bytes"`
	Submission       Submission  `toml:"submission"`
	Relay            Relay       `toml:"relay"`
	Admin            Admin       `toml:"admin"`
	DNS              DNS         `toml:"dns"`
	Milter           Milter      `toml:"milter"`
	Policyd          Policyd     `toml:"policyd"`
	Sandbox          Sandbox     `toml:"sandbox"`
	Limits           Limits      `toml:"limits"`
	Confirm          Confirm     `toml:"confirm"`
	Bounce           Bounce      `toml:"bounce"`
	Suppression      Suppression `toml:"suppression"`
	Webhooks         Webhooks    `toml:"webhooks"`
	DKIM             DKIM        `toml:"dkim"`
	Debug            Debug       `toml:"debug"`

	// AdminKey comes only from SENDERGATE_ADMIN_KEY; when empty the
	// daemon uses (or creates) data_dir/admin.key.
	AdminKey string `toml:"-"`
}

// Submission configures the SMTP submission front end (RFC 6409).
type Submission struct {
	Listen                  string `toml:"listen"`     // STARTTLS submission, host:port
	ListenTLS               string `toml:"listen_tls"` // implicit TLS (RFC 8314); empty = off
	TLSCert                 string `toml:"tls_cert"`   // PEM path; empty = self-signed in data_dir
	TLSKey                  string `toml:"tls_key"`    // PEM path; set together with TLSCert
	AllowInsecureAuth       bool   `toml:"allow_insecure_auth"`
	MaxMessageBytes         int64  `toml:"max_message_bytes"`
	MaxRecipients           int    `toml:"max_recipients"`
	RequireConfirmedAddress bool   `toml:"require_confirmed_address"`
	// MaxConnections and MaxConnectionsPerIP bound open connections; past
	// either the client gets 421 4.7.0 and is closed.
	MaxConnections      int `toml:"max_connections"`
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxBufferedBytes bounds the bytes held in transactions daemon-wide;
	// past it DATA gets 451 4.3.1.
	MaxBufferedBytes int64 `toml:"max_buffered_bytes"`
	// ProxyFrom lists the IPs or CIDRs trusted to send the PROXY protocol
	// (v1 or v2) header; empty = off.
	ProxyFrom []string `toml:"proxy_from"`
}

// Relay configures the hand-off to the upstream MTA.
type Relay struct {
	Upstream    string `toml:"upstream"`     // host:port; empty = file outbox in data_dir/outbox
	UpstreamTLS string `toml:"upstream_tls"` // none | starttls | tls
	Username    string `toml:"username"`     // AUTH to the upstream, with Password
	Password    string `toml:"password"`
}

// Admin configures the HTTP admin API.
type Admin struct {
	Listen    string `toml:"listen"`
	PublicURL string `toml:"public_url"` // base of confirmation links
}

// DNS configures the provider zone sendergate serves and the resolvers
// used to verify customer records.
type DNS struct {
	Zone            string   `toml:"zone"`
	Listen          string   `toml:"listen"` // UDP and TCP
	Nameservers     []string `toml:"nameservers"`
	Resolvers       []string `toml:"resolvers"` // ip:port; empty = /etc/resolv.conf
	BounceMX        string   `toml:"bounce_mx"`
	SPF             string   `toml:"spf"`
	AllowTransfer   []string `toml:"allow_transfer"`   // IPs or CIDRs allowed AXFR
	TrackingAddress string   `toml:"tracking_address"` // empty = none
	// Notify lists host:port secondaries sent NOTIFY (RFC 1996) after
	// each zone change.
	Notify []string `toml:"notify"`
	// NameserverAddresses is glue: A/AAAA records for in-zone NS names.
	NameserverAddresses map[string][]string `toml:"nameserver_addresses"`
	// BounceMXAddresses are A/AAAA records for an in-zone bounce_mx.
	BounceMXAddresses []string `toml:"bounce_mx_addresses"`
	// SOA timers (RFC 1035 3.3.13) of the provider zone.
	SOARefresh     Duration `toml:"soa_refresh"`
	SOARetry       Duration `toml:"soa_retry"`
	SOAExpire      Duration `toml:"soa_expire"`
	SOAMinimum     Duration `toml:"soa_minimum"` // negative caching TTL (RFC 2308)
	VerifyInterval Duration `toml:"verify_interval"`
	// CheckQPS is the ceiling on background verification queries per
	// second, per instance.
	CheckQPS int      `toml:"check_qps"`
	Grace    Duration `toml:"grace"`
}

// Milter configures the milter gate. Its peer is trusted with the
// {auth_authen} it claims, so the listener is a trust boundary.
type Milter struct {
	Listen          string   `toml:"listen"`          // empty = off; "host:port" or "unix:/path"
	Peers           []string `toml:"peers"`           // TCP peers admitted (IPs or CIDRs)
	SocketGroup     string   `toml:"socket_group"`    // group of a unix socket (mode 0660); empty = the daemon's
	Unauthenticated string   `toml:"unauthenticated"` // accept | reject
}

// Policyd configures the Postfix policy delegation service.
type Policyd struct {
	Listen          string   `toml:"listen"`          // empty = off; "host:port" or "unix:/path"
	Peers           []string `toml:"peers"`           // TCP peers admitted (IPs or CIDRs)
	SocketGroup     string   `toml:"socket_group"`    // group of a unix socket (mode 0660); empty = the daemon's
	Unauthenticated string   `toml:"unauthenticated"` // dunno | reject
}

// Sandbox configures every organization's pre-verified sandbox domain.
type Sandbox struct {
	Zone string `toml:"zone"` // inside dns.zone
	// DailyLimit is recipients per organization per UTC day; 0 disables
	// sending from sandbox domains.
	DailyLimit int `toml:"daily_limit"`
}

// Limits are the default sending limits, in recipients per window (fixed
// UTC minutes, hours, days); 0 = none. Limits set over the API for an
// organization or an account replace these for it.
type Limits struct {
	OrgPerMinute     int64 `toml:"org_per_minute"`
	OrgPerHour       int64 `toml:"org_per_hour"`
	OrgPerDay        int64 `toml:"org_per_day"`
	AccountPerMinute int64 `toml:"account_per_minute"`
	AccountPerHour   int64 `toml:"account_per_hour"`
	AccountPerDay    int64 `toml:"account_per_day"`
	// NewAccountPerDay caps the day limit of accounts younger than
	// NewAccountAge; 0 = no such cap.
	NewAccountPerDay int64    `toml:"new_account_per_day"`
	NewAccountAge    Duration `toml:"new_account_age"`
}

// Confirm configures email address confirmation.
type Confirm struct {
	From string   `toml:"from"`
	TTL  Duration `toml:"ttl"`
}

// Bounce configures the receiver of mail sent back to bounce+ID@
// return-path addresses (DSNs and complaint reports).
type Bounce struct {
	// Listen is the inbound SMTP address ("host:port"; ":25" in
	// production, behind dns.bounce_mx); empty = off.
	Listen          string   `toml:"listen"`
	MaxMessageBytes int64    `toml:"max_message_bytes"`
	MaxAge          Duration `toml:"max_age"` // older bounce ids are dropped
}

// Suppression configures the per-organization suppression list.
type Suppression struct {
	Enforce    bool     `toml:"enforce"`     // refuse suppressed recipients at RCPT
	SoftLimit  int      `toml:"soft_limit"`  // soft bounces within SoftWindow that suppress
	SoftWindow Duration `toml:"soft_window"` //
	TTL        Duration `toml:"ttl"`         // 0 = never expires; manual entries never expire
}

// Webhooks configures event delivery to organizations' URLs.
type Webhooks struct {
	// AllowPrivate permits loopback, private and link-local target
	// addresses (off: a webhook cannot be aimed at the host's own
	// network, SSRF).
	AllowPrivate bool `toml:"allow_private"`
}

// DKIM configures key rotation.
type DKIM struct {
	RotateInterval Duration `toml:"rotate_interval"` // automatic rotation; 0 = off
	RetireAfter    Duration `toml:"retire_after"`    // an old key stays published this long
}

// Debug configures the operator's profiling listener.
type Debug struct {
	// Listen serves net/http/pprof at /debug/pprof/ on a loopback
	// "ip:port" or on "unix:/absolute/path" (a socket of mode 0600: only
	// the daemon's user may connect); empty (the default) = off.
	Listen string `toml:"listen"`
}

// Default returns the configuration used when no file is given: every
// listener on loopback, SQLite in ./data, no upstream (file outbox).
// Each call returns fresh slices.
func Default() Config {
	return Config{
		DataDir:  "./data",
		Database: "sqlite:./data/sendergate.db",
		Hostname: "localhost",
		Submission: Submission{
			Listen:              "127.0.0.1:1587",
			MaxMessageBytes:     26214400,
			MaxRecipients:       100,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 50,
			MaxBufferedBytes:    268435456,
			ProxyFrom:           []string{},
		},
		Relay: Relay{UpstreamTLS: "none"},
		Admin: Admin{
			Listen:    "127.0.0.1:8025",
			PublicURL: "http://127.0.0.1:8025",
		},
		DNS: DNS{
			Zone:                "sg.localhost",
			Listen:              "127.0.0.1:5353",
			Nameservers:         []string{"ns1.sg.localhost"},
			Resolvers:           []string{},
			BounceMX:            "mx.sg.localhost",
			SPF:                 "v=spf1 ip4:127.0.0.1 -all",
			AllowTransfer:       []string{"127.0.0.1"},
			Notify:              []string{},
			NameserverAddresses: map[string][]string{},
			BounceMXAddresses:   []string{},
			SOARefresh:          Duration{time.Hour},
			SOARetry:            Duration{10 * time.Minute},
			SOAExpire:           Duration{14 * 24 * time.Hour},
			SOAMinimum:          Duration{5 * time.Minute},
			VerifyInterval:      Duration{time.Hour},
			CheckQPS:            50,
			Grace:               Duration{72 * time.Hour},
		},
		Milter:  Milter{Listen: "", Peers: []string{"127.0.0.1", "::1"}, Unauthenticated: "accept"},
		Policyd: Policyd{Listen: "", Peers: []string{"127.0.0.1", "::1"}, Unauthenticated: "dunno"},
		Sandbox: Sandbox{Zone: "sandbox.sg.localhost", DailyLimit: 100},
		Limits:  Limits{NewAccountAge: Duration{7 * 24 * time.Hour}},
		Confirm: Confirm{From: "no-reply@sg.localhost", TTL: Duration{24 * time.Hour}},
		Bounce: Bounce{
			Listen:          "127.0.0.1:2525",
			MaxMessageBytes: 2 << 20,
			MaxAge:          Duration{30 * 24 * time.Hour},
		},
		Suppression: Suppression{Enforce: true, SoftLimit: 5, SoftWindow: Duration{7 * 24 * time.Hour}},
		DKIM: DKIM{
			RotateInterval: Duration{180 * 24 * time.Hour},
			RetireAfter:    Duration{7 * 24 * time.Hour},
		},
	}
}

// Load reads the configuration. With path "" it reads ./sendergate.toml
// if that exists and otherwise uses the defaults alone. The file is
// decoded on top of Default(); unknown keys are errors. Then
// SENDERGATE_DATABASE and SENDERGATE_ADMIN_KEY (read with getenv, nil
// meaning os.Getenv) override the file, names are normalized and the
// result is validated. Load returns the path it read ("" when none).
func Load(path string, getenv func(string) string) (Config, string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if path == "" {
		if _, err := os.Stat(DefaultPath); err == nil {
			path = DefaultPath
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Config{}, "", fmt.Errorf("config: %w", err)
		}
	}
	cfg := Default()
	// Unknown keys, values of the wrong form and invalid values are
	// reported together: a typo must not hide a bad value.
	var errs Errors
	if path != "" {
		err := decodeFile(path, &cfg)
		if !errors.As(err, &errs) && err != nil {
			return Config{}, path, err // unreadable, or a syntax error
		}
	}
	if v := getenv(EnvDatabase); v != "" {
		cfg.Database = v
	}
	cfg.AdminKey = getenv(EnvAdminKey)
	cfg.normalize()
	var verrs Errors
	if err := cfg.Validate(); errors.As(err, &verrs) {
		errs = append(errs, verrs...)
	}
	if len(errs) > 0 {
		return Config{}, path, errs
	}
	return cfg, path, nil
}

// normalize lowercases DNS names and strips trailing dots, so the rest
// of sendergate compares names exactly.
func (c *Config) normalize() {
	name := func(s string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".") }
	c.Hostname = name(c.Hostname)
	c.DNS.Zone = name(c.DNS.Zone)
	c.DNS.BounceMX = name(c.DNS.BounceMX)
	c.Sandbox.Zone = name(c.Sandbox.Zone)
	for i, ns := range c.DNS.Nameservers {
		c.DNS.Nameservers[i] = name(ns)
	}
}
