package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const examplePath = "../sendergate.example.toml"

// TestExampleEqualsDefault keeps sendergate.example.toml and Default()
// from drifting apart.
func TestExampleEqualsDefault(t *testing.T) {
	var got Config
	md, err := toml.DecodeFile(examplePath, &got)
	if err != nil {
		t.Fatalf("decode example: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("example has unknown keys: %v", u)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("example differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

// TestExampleListsEveryKey checks that every TOML key of Config is
// written out in the example, not left to its zero value.
func TestExampleListsEveryKey(t *testing.T) {
	var c Config
	md, err := toml.DecodeFile(examplePath, &c)
	if err != nil {
		t.Fatalf("decode example: %v", err)
	}
	keys := tomlKeys(reflect.TypeOf(c), nil)
	if len(keys) < 35 {
		t.Fatalf("found only %d keys in Config; the walk is broken", len(keys))
	}
	for _, k := range keys {
		if !md.IsDefined(k...) {
			t.Errorf("key %s missing from %s", strings.Join(k, "."), examplePath)
		}
	}
}

// tomlKeys lists the dotted keys of the leaves of struct type t.
func tomlKeys(t reflect.Type, prefix []string) [][]string {
	var keys [][]string
	for f := range t.Fields() {
		tag := f.Tag.Get("toml")
		if tag == "-" || tag == "" {
			continue
		}
		k := append(append([]string(nil), prefix...), tag)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			keys = append(keys, tomlKeys(f.Type, k)...)
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestDefaultReturnsFreshSlices(t *testing.T) {
	a := Default()
	a.DNS.Nameservers[0] = "changed.example"
	if b := Default(); b.DNS.Nameservers[0] != "ns1.sg.localhost" {
		t.Errorf("Default() shares slices between calls: %q", b.DNS.Nameservers[0])
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		text string // MarshalText of the result
		bad  bool
	}{
		{name: "hours", in: "72h", want: 72 * time.Hour, text: "72h"},
		{name: "one hour", in: "1h", want: time.Hour, text: "1h"},
		{name: "seconds", in: "30s", want: 30 * time.Second, text: "30s"},
		{name: "minutes", in: "10m", want: 10 * time.Minute, text: "10m"},
		{name: "mixed", in: "1h30m", want: 90 * time.Minute, text: "1h30m"},
		{name: "hours and seconds", in: "1h0m5s", want: time.Hour + 5*time.Second, text: "1h0m5s"},
		{name: "zero", in: "0s", want: 0, text: "0s"},
		{name: "no unit", in: "30", bad: true},
		{name: "days are not Go units", in: "3d", bad: true},
		{name: "empty", in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.bad {
				if err == nil {
					t.Fatalf("UnmarshalText(%q) = %v, want error", tt.in, d.Duration)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.Duration, err, tt.want)
			}
			text, err := d.MarshalText()
			if err != nil || string(text) != tt.text {
				t.Errorf("MarshalText() = %q, %v; want %q", text, err, tt.text)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(Default()); err != nil {
		t.Fatalf("encode: %v", err)
	}
	if !strings.Contains(b.String(), `grace = "72h"`) {
		t.Errorf("encoded config lacks grace = \"72h\":\n%s", b.String())
	}
	var got Config
	if _, err := toml.Decode(b.String(), &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", got, want)
	}
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    string            // written to a temp file; "" = path "" in an empty dir
		env     map[string]string // getenv
		check   func(t *testing.T, c Config)
		wantErr []string // substrings of the error, all required
	}{
		{
			name: "partial file keeps other defaults",
			file: "[relay]\nupstream = \"mta.example.com:25\"\nupstream_tls = \"starttls\"\n" +
				"[dns]\nnameservers = [\"ns1.example.net\", \"ns2.example.net\"]\n",
			check: func(t *testing.T, c Config) {
				want := Default()
				want.Relay.Upstream, want.Relay.UpstreamTLS = "mta.example.com:25", "starttls"
				want.DNS.Nameservers = []string{"ns1.example.net", "ns2.example.net"}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "durations",
			file: "[dns]\nverify_interval = \"30s\"\ngrace = \"168h\"\n[confirm]\nttl = \"2h\"\n",
			check: func(t *testing.T, c Config) {
				if c.DNS.VerifyInterval.Duration != 30*time.Second || c.DNS.Grace.Duration != 168*time.Hour ||
					c.Confirm.TTL.Duration != 2*time.Hour {
					t.Errorf("durations = %v %v %v", c.DNS.VerifyInterval, c.DNS.Grace, c.Confirm.TTL)
				}
			},
		},
		{
			name: "names normalized",
			file: "hostname = \"MX.Example.COM.\"\n[dns]\nzone = \"SG.Example.NET.\"\n" +
				"nameservers = [\"NS1.Example.NET.\"]\n[sandbox]\nzone = \"Sandbox.SG.Example.NET\"\n",
			check: func(t *testing.T, c Config) {
				if c.Hostname != "mx.example.com" || c.DNS.Zone != "sg.example.net" ||
					c.DNS.Nameservers[0] != "ns1.example.net" || c.Sandbox.Zone != "sandbox.sg.example.net" {
					t.Errorf("not normalized: %q %q %q %q", c.Hostname, c.DNS.Zone, c.DNS.Nameservers[0], c.Sandbox.Zone)
				}
			},
		},
		{
			name: "env overrides file",
			file: "database = \"sqlite:/var/lib/sendergate/db\"\n",
			env:  map[string]string{EnvDatabase: "postgres://sg:pw@db.internal:5432/sg", EnvAdminKey: "sekret"},
			check: func(t *testing.T, c Config) {
				if c.Database != "postgres://sg:pw@db.internal:5432/sg" || c.AdminKey != "sekret" {
					t.Errorf("Database=%q AdminKey=%q", c.Database, c.AdminKey)
				}
			},
		},
		{
			name: "empty env keeps file",
			file: "database = \"sqlite:/var/lib/sendergate/db\"\n",
			env:  map[string]string{EnvDatabase: ""},
			check: func(t *testing.T, c Config) {
				if c.Database != "sqlite:/var/lib/sendergate/db" || c.AdminKey != "" {
					t.Errorf("Database=%q AdminKey=%q", c.Database, c.AdminKey)
				}
			},
		},
		{
			name:    "admin_key is not a file key",
			file:    "admin_key = \"x\"\n",
			wantErr: []string{"config: admin_key: unknown key"},
		},
		{
			name:    "unknown keys all reported",
			file:    "[submission]\nlistn = \":587\"\n[relay]\nupstream_tsl = \"tls\"\n",
			wantErr: []string{"config: submission.listn: unknown key", "config: relay.upstream_tsl: unknown key"},
		},
		{
			name:    "unknown section",
			file:    "[smtp]\nlisten = \":587\"\n",
			wantErr: []string{"smtp", "unknown key"},
		},
		{
			name:    "bad duration names the key",
			file:    "[dns]\ngrace = \"3d\"\n",
			wantErr: []string{"config: dns.grace:", "line 2", `invalid duration "3d"`},
		},
		{
			name:    "duration as number",
			file:    "[confirm]\nttl = 3600\n",
			wantErr: []string{"confirm.ttl", "invalid duration"},
		},
		{
			name:    "wrong type names the key",
			file:    "[submission]\nmax_recipients = \"many\"\n",
			wantErr: []string{"submission.max_recipients"},
		},
		{
			name:    "toml syntax error",
			file:    "[submission\n",
			wantErr: []string{"config:", "sg.toml", "expected"},
		},
		{
			name:    "invalid values are validated",
			file:    "[submission]\nmax_recipients = 0\n[milter]\nunauthenticated = \"tempfail\"\n",
			wantErr: []string{"config: submission.max_recipients: must be at least 1", "config: milter.unauthenticated:"},
		},
		{
			name:    "env value is validated",
			env:     map[string]string{EnvDatabase: "mysql://x"},
			file:    "\n",
			wantErr: []string{"config: database: must start with sqlite: or postgres://"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sg.toml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			c, used, err := Load(path, envMap(tt.env))
			if used != path {
				t.Errorf("Load returned path %q, want %q", used, path)
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded, want error with %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadUnknownKeyIsFieldError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sg.toml")
	if err := os.WriteFile(path, []byte("[dns]\nzones = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path, envMap(nil))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "dns.zones" {
		t.Fatalf("Load error = %v, want a *FieldError for dns.zones", err)
	}
}

func TestLoadMissingExplicitFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, _, err := Load(path, envMap(nil))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want a not-exist error", err)
	}
}

func TestLoadPicksUpWorkingDirFile(t *testing.T) {
	t.Chdir(t.TempDir())
	c, used, err := Load("", envMap(nil))
	if err != nil || used != "" || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("without a file: Load = %+v, %q, %v; want defaults, \"\", nil", c, used, err)
	}

	if err := os.WriteFile(DefaultPath, []byte("hostname = \"mail.example.com\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, used, err = Load("", envMap(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if used != DefaultPath || c.Hostname != "mail.example.com" {
		t.Errorf("Load = hostname %q, path %q; want mail.example.com, %q", c.Hostname, used, DefaultPath)
	}
}

func TestLoadExample(t *testing.T) {
	c, used, err := Load(examplePath, envMap(nil))
	if err != nil || used != examplePath || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load(example) = %+v, %q, %v; want Default()", c, used, err)
	}
}
