package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadErrorsInOnePass checks that one Load reports every problem of a
// file: a typo must not hide a bad value, a value of the wrong type must
// not hide an invalid one, and all of them come on one line.
func TestLoadErrorsInOnePass(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // FieldError keys, in this order
		msgs []string // substrings of the whole error
	}{
		{
			name: "typo and invalid value",
			file: "[submission]\nlistn = \":587\"\nmax_recipients = 0\n",
			want: []string{"submission.listn", "submission.max_recipients"},
			msgs: []string{"unknown key", "must be at least 1"},
		},
		{
			name: "typo, wrong type, bad duration and invalid value",
			file: "hostnme = \"mx.example.com\"\n[submission]\nmax_connections = \"many\"\n[dns]\ngrace = \"3d\"\ncheck_qps = 0\n[milter]\nunauthenticated = \"tempfail\"\n",
			want: []string{"hostnme", "submission.max_connections", "dns.grace", "dns.check_qps", "milter.unauthenticated"},
			msgs: []string{"line 3", "line 5", `invalid duration "3d"`, `"tempfail" must be one of accept, reject`},
		},
		{
			name: "unknown section and an invalid value elsewhere",
			file: "[smtp]\nlisten = \":587\"\n[relay]\nupstream_tls = \"ssl\"\n",
			want: []string{"smtp", "relay.upstream_tls"},
		},
		{
			name: "a section written as a value",
			file: "submission = 587\n[dns]\nzone = \"\"\n",
			want: []string{"submission", "dns.zone"},
			msgs: []string{"must be a table ([submission])", "must not be empty"},
		},
		{
			name: "wrong type keeps the default, so dependent checks stay quiet",
			file: "[submission]\nmax_message_bytes = \"25MB\"\n",
			want: []string{"submission.max_message_bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sg.toml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(path, envMap(nil))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v, want Errors", err)
			}
			var keys []string
			for _, e := range errs {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *FieldError", e)
				}
				keys = append(keys, fe.Key)
			}
			if strings.Join(keys, " ") != strings.Join(tt.want, " ") {
				t.Errorf("keys = %v, want %v (error: %v)", keys, tt.want, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			for _, m := range tt.msgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}
}
