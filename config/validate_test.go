package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // every key that must be reported, in order; nil = valid
	}{
		{name: "defaults", mutate: func(c *Config) {}},
		{name: "production-like", mutate: func(c *Config) {
			c.Database = "postgresql://sg:pw@db:5432/sg?sslmode=require"
			c.Hostname = "smtp.esp.example"
			c.Submission.Listen, c.Submission.ListenTLS = ":587", ":465"
			c.Submission.TLSCert, c.Submission.TLSKey = "/etc/sg/cert.pem", "/etc/sg/key.pem"
			c.Relay = Relay{Upstream: "[2001:db8::25]:25", UpstreamTLS: "tls", Username: "u", Password: "p"}
			c.Admin.PublicURL = "https://sg.esp.example/base/"
			c.DNS.Zone, c.Sandbox.Zone = "sg.esp.example", "sandbox.sg.esp.example"
			c.DNS.Resolvers = []string{"192.0.2.53:53", "[2001:db8::53]:53"}
			c.DNS.AllowTransfer = []string{"192.0.2.0/24", "2001:db8::/32", "::1"}
			c.DNS.TrackingAddress = "2001:db8::80"
			c.DNS.VerifyInterval = Duration{MinVerifyInterval}
			c.Milter.Listen, c.Policyd.Listen = "", ""
			c.Milter.Unauthenticated, c.Policyd.Unauthenticated = "reject", "reject"
			c.Sandbox.DailyLimit = 0
			c.Confirm.From = "confirm@esp.example"
		}},
		{name: "dkim fast rotation for a trial", mutate: func(c *Config) {
			c.DKIM.RotateInterval, c.DKIM.RetireAfter = Duration{time.Minute}, Duration{2 * time.Minute}
		}},
		{name: "dkim bad", mutate: func(c *Config) {
			c.DKIM.RotateInterval, c.DKIM.RetireAfter = Duration{time.Second}, Duration{time.Second}
		}, wantKeys: []string{"dkim.rotate_interval", "dkim.retire_after"}},
		{name: "empty data_dir", mutate: func(c *Config) { c.DataDir = "" }, wantKeys: []string{"data_dir"}},
		{name: "database scheme", mutate: func(c *Config) { c.Database = "mysql://h/db" }, wantKeys: []string{"database"}},
		{name: "sqlite without path", mutate: func(c *Config) { c.Database = "sqlite:" }, wantKeys: []string{"database"}},
		{name: "empty hostname", mutate: func(c *Config) { c.Hostname = "" }, wantKeys: []string{"hostname"}},
		{name: "hostname with space", mutate: func(c *Config) { c.Hostname = "my host" }, wantKeys: []string{"hostname"}},
		{name: "submission.listen empty", mutate: func(c *Config) { c.Submission.Listen = "" },
			wantKeys: []string{"submission.listen"}},
		{name: "submission.listen without port", mutate: func(c *Config) { c.Submission.Listen = "127.0.0.1" },
			wantKeys: []string{"submission.listen"}},
		{name: "listen_tls bad port", mutate: func(c *Config) { c.Submission.ListenTLS = ":smtps" },
			wantKeys: []string{"submission.listen_tls"}},
		{name: "tls_cert without key", mutate: func(c *Config) { c.Submission.TLSCert = "c.pem" },
			wantKeys: []string{"submission.tls_key"}},
		{name: "tls_key without cert", mutate: func(c *Config) { c.Submission.TLSKey = "k.pem" },
			wantKeys: []string{"submission.tls_cert"}},
		{name: "memory_limit_bytes too small", mutate: func(c *Config) { c.MemoryLimitBytes = 1 << 20 },
			wantKeys: []string{"memory_limit_bytes"}},
		{name: "memory_limit_bytes negative", mutate: func(c *Config) { c.MemoryLimitBytes = -1 },
			wantKeys: []string{"memory_limit_bytes"}},
		{name: "max_message_bytes", mutate: func(c *Config) { c.Submission.MaxMessageBytes = 1023 },
			wantKeys: []string{"submission.max_message_bytes"}},
		{name: "max_recipients", mutate: func(c *Config) { c.Submission.MaxRecipients = 0 },
			wantKeys: []string{"submission.max_recipients"}},
		{name: "upstream without host", mutate: func(c *Config) { c.Relay.Upstream = ":25" },
			wantKeys: []string{"relay.upstream"}},
		{name: "upstream port 0", mutate: func(c *Config) { c.Relay.Upstream = "mta:0" },
			wantKeys: []string{"relay.upstream"}},
		{name: "upstream_tls", mutate: func(c *Config) { c.Relay.UpstreamTLS = "ssl" },
			wantKeys: []string{"relay.upstream_tls"}},
		{name: "password without username", mutate: func(c *Config) { c.Relay.Password = "p" },
			wantKeys: []string{"relay.username"}},
		{name: "admin.listen", mutate: func(c *Config) { c.Admin.Listen = "localhost" },
			wantKeys: []string{"admin.listen"}},
		{name: "public_url relative", mutate: func(c *Config) { c.Admin.PublicURL = "/confirm" },
			wantKeys: []string{"admin.public_url"}},
		{name: "public_url ftp", mutate: func(c *Config) { c.Admin.PublicURL = "ftp://x.example" },
			wantKeys: []string{"admin.public_url"}},
		{name: "public_url query", mutate: func(c *Config) { c.Admin.PublicURL = "https://x.example/?a=b" },
			wantKeys: []string{"admin.public_url"}},
		{name: "dns.zone invalid", mutate: func(c *Config) { c.DNS.Zone = "sg..localhost"; c.Sandbox.Zone = "sandbox.sg..localhost" },
			wantKeys: []string{"dns.zone", "sandbox.zone"}},
		{name: "dns.zone IDN U-label", mutate: func(c *Config) { c.DNS.Zone = "bücher.example"; c.Sandbox.Zone = "s.xn--bcher-kva.example" },
			wantKeys: []string{"dns.zone"}},
		{name: "dns.listen", mutate: func(c *Config) { c.DNS.Listen = "" }, wantKeys: []string{"dns.listen"}},
		{name: "no nameservers", mutate: func(c *Config) { c.DNS.Nameservers = nil }, wantKeys: []string{"dns.nameservers"}},
		{name: "bad nameserver", mutate: func(c *Config) { c.DNS.Nameservers = []string{"ns1.sg.localhost", "-ns2"} },
			wantKeys: []string{"dns.nameservers[1]"}},
		{name: "resolver without port", mutate: func(c *Config) { c.DNS.Resolvers = []string{"9.9.9.9"} },
			wantKeys: []string{"dns.resolvers[0]"}},
		{name: "resolver hostname", mutate: func(c *Config) { c.DNS.Resolvers = []string{"dns.google:53"} },
			wantKeys: []string{"dns.resolvers[0]"}},
		{name: "bounce_mx", mutate: func(c *Config) { c.DNS.BounceMX = "" }, wantKeys: []string{"dns.bounce_mx"}},
		{name: "spf", mutate: func(c *Config) { c.DNS.SPF = "v=spf2 -all" }, wantKeys: []string{"dns.spf"}},
		{name: "allow_transfer", mutate: func(c *Config) { c.DNS.AllowTransfer = []string{"10.0.0.0/33"} },
			wantKeys: []string{"dns.allow_transfer[0]"}},
		{name: "tracking_address", mutate: func(c *Config) { c.DNS.TrackingAddress = "track.example" },
			wantKeys: []string{"dns.tracking_address"}},
		{name: "verify_interval too low", mutate: func(c *Config) { c.DNS.VerifyInterval = Duration{time.Second} },
			wantKeys: []string{"dns.verify_interval"}},
		{name: "grace zero", mutate: func(c *Config) { c.DNS.Grace = Duration{} }, wantKeys: []string{"dns.grace"}},
		{name: "milter.listen", mutate: func(c *Config) { c.Milter.Listen = "inet:127.0.0.1:8891" },
			wantKeys: []string{"milter.listen"}},
		{name: "milter.unauthenticated", mutate: func(c *Config) { c.Milter.Unauthenticated = "tempfail" },
			wantKeys: []string{"milter.unauthenticated"}},
		{name: "policyd.listen", mutate: func(c *Config) { c.Policyd.Listen = "127.0.0.1:99999" },
			wantKeys: []string{"policyd.listen"}},
		{name: "policyd.unauthenticated", mutate: func(c *Config) { c.Policyd.Unauthenticated = "DUNNO" },
			wantKeys: []string{"policyd.unauthenticated"}},
		{name: "sandbox outside zone", mutate: func(c *Config) { c.Sandbox.Zone = "sandbox.other.example" },
			wantKeys: []string{"sandbox.zone"}},
		{name: "sandbox equals zone", mutate: func(c *Config) { c.Sandbox.Zone = c.DNS.Zone },
			wantKeys: []string{"sandbox.zone"}},
		{name: "sandbox suffix but not subdomain", mutate: func(c *Config) { c.Sandbox.Zone = "xsg.localhost" },
			wantKeys: []string{"sandbox.zone"}},
		{name: "daily_limit negative", mutate: func(c *Config) { c.Sandbox.DailyLimit = -1 },
			wantKeys: []string{"sandbox.daily_limit"}},
		{name: "confirm.from display name", mutate: func(c *Config) { c.Confirm.From = "SG <no-reply@sg.localhost>" },
			wantKeys: []string{"confirm.from"}},
		{name: "confirm.from no domain", mutate: func(c *Config) { c.Confirm.From = "no-reply" },
			wantKeys: []string{"confirm.from"}},
		{name: "confirm.ttl", mutate: func(c *Config) { c.Confirm.TTL = Duration{-time.Hour} },
			wantKeys: []string{"confirm.ttl"}},
		{name: "several keys at once", mutate: func(c *Config) {
			c.Submission.MaxRecipients = 0
			c.Relay.UpstreamTLS = "yes"
			c.DNS.Grace = Duration{}
			c.Confirm.From = ""
		}, wantKeys: []string{"submission.max_recipients", "relay.upstream_tls", "dns.grace", "confirm.from"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantKeys == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Validate() = %v (%T), want Errors", err, err)
			}
			var got []string
			for _, e := range errs {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("problem %v is %T, want *FieldError", e, e)
				}
				got = append(got, fe.Key)
				if !strings.HasPrefix(e.Error(), "config: "+fe.Key+": ") {
					t.Errorf("problem %q does not start with config: %s:", e, fe.Key)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("Validate() keys = %v, want %v (error: %v)", got, tt.wantKeys, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestDatabaseDriver(t *testing.T) {
	tests := []struct {
		name       string
		database   string
		wantDriver string
		wantDSN    string
		wantErr    string
	}{
		{name: "sqlite relative", database: "sqlite:./data/sendergate.db", wantDriver: "sqlite", wantDSN: "./data/sendergate.db"},
		{name: "sqlite absolute", database: "sqlite:/var/lib/sg.db", wantDriver: "sqlite", wantDSN: "/var/lib/sg.db"},
		{name: "sqlite URL form", database: "sqlite:///var/lib/sg.db", wantDriver: "sqlite", wantDSN: "/var/lib/sg.db"},
		{name: "sqlite with pragma", database: "sqlite:sg.db?_pragma=busy_timeout(5000)", wantDriver: "sqlite",
			wantDSN: "sg.db?_pragma=busy_timeout(5000)"},
		{name: "postgres", database: "postgres://u:p@h:5432/db?sslmode=disable", wantDriver: "postgres",
			wantDSN: "postgres://u:p@h:5432/db?sslmode=disable"},
		{name: "postgresql", database: "postgresql://u@h/db", wantDriver: "postgres", wantDSN: "postgresql://u@h/db"},
		{name: "postgres socket host", database: "postgres:///db?host=/run/postgresql", wantDriver: "postgres",
			wantDSN: "postgres:///db?host=/run/postgresql"},
		{name: "postgres without host", database: "postgres:///db", wantErr: "no host"},
		{name: "empty", database: "", wantErr: "must not be empty"},
		{name: "sqlite without path", database: "sqlite://", wantErr: "no database file path"},
		{name: "unknown scheme hides password", database: "mysql://u:hunter2@h/db", wantErr: "must start with"},
		{name: "bad postgres URL hides password", database: "postgres://u:hunter2@h:port/db", wantErr: "bad PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Database: tt.database}
			driver, dsn, err := c.DatabaseDriver()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DatabaseDriver() err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil || driver != tt.wantDriver || dsn != tt.wantDSN {
				t.Errorf("DatabaseDriver() = %q, %q, %v; want %q, %q", driver, dsn, err, tt.wantDriver, tt.wantDSN)
			}
		})
	}
}

func FuzzCheckHostname(f *testing.F) {
	for _, s := range []string{"sg.localhost", "a", "-a.b", "a..b", "xn--bcher-kva.example", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkHostname(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > 253 || strings.Contains(name, "..") ||
			strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			t.Fatalf("accepted invalid name %q", name)
		}
		for _, r := range name {
			if r > 127 {
				t.Fatalf("accepted non-ASCII name %q", name)
			}
		}
	})
}
