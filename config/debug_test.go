package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebugListen: the profiling listener is off by default and only ever
// on a loopback address; a file that puts it elsewhere names the key.
func TestDebugListen(t *testing.T) {
	if got := Default().Debug.Listen; got != "" {
		t.Fatalf("debug.listen defaults to %q, want off", got)
	}
	tests := []struct {
		listen  string
		wantErr string // "" = valid
	}{
		{listen: ""},
		{listen: "127.0.0.1:6060"},
		{listen: "127.0.0.2:0"},
		{listen: "[::1]:6060"},
		{listen: ":6060", wantErr: "not a loopback address"},
		{listen: "0.0.0.0:6060", wantErr: "not a loopback address"},
		{listen: "[::]:6060", wantErr: "not a loopback address"},
		{listen: "192.0.2.10:6060", wantErr: "not a loopback address"},
		{listen: "localhost:6060", wantErr: "not a loopback address"},
		{listen: "[::ffff:127.0.0.1]:6060"}, // IPv4-mapped loopback binds 127.0.0.1
		{listen: "127.0.0.1", wantErr: "must be ip:port"},
		{listen: "127.0.0.1:pprof", wantErr: "bad port"},
		{listen: "unix:/run/sendergate/debug.sock"},
		{listen: "unix:debug.sock", wantErr: "must be absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sendergate.toml")
			if err := os.WriteFile(path, []byte("[debug]\nlisten = \""+tt.listen+"\"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := Load(path, func(string) string { return "" })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if cfg.Debug.Listen != tt.listen {
					t.Fatalf("debug.listen = %q, want %q", cfg.Debug.Listen, tt.listen)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Key != "debug.listen" || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load = %v, want a debug.listen error with %q", err, tt.wantErr)
			}
		})
	}
}
