package gatelisten_test

import (
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/gatelisten"
)

// dialUnix connects to the socket at path and returns what the server sent.
func dialUnix(t *testing.T, path string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// staleSocket leaves a socket file at path that nobody listens on, as a
// crashed daemon does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
}

func TestUnixSocketModeGroupAndRemoval(t *testing.T) {
	// Root can give the socket to any group; anyone else to their own.
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "milter.sock")
	l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "milter", Group: strconv.Itoa(gid)})
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr().String() != path {
		t.Errorf("Addr = %s, want %s", l.Addr(), path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
	if g := fi.Sys().(*syscall.Stat_t).Gid; int(g) != gid {
		t.Errorf("socket group = %d, want %d", g, gid)
	}
	serve(t, l)
	if got := dialUnix(t, path); got != greeting {
		t.Errorf("read %q, want the greeting", got)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("after Close the directory still holds %v, want the socket (and any temporary) gone", left)
	}
}

// TestUnixSocketOwnMode: Options.Mode replaces the default 0660 (the
// profiling listener's socket is 0600: the daemon's user only).
func TestUnixSocketOwnMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "debug.sock")
	l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "debug", Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
}

func TestUnixStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policyd.sock")
	staleSocket(t, path)
	l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "policyd"})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	serve(t, l)
	if got := dialUnix(t, path); got != greeting {
		t.Errorf("read %q, want the greeting of the new listener", got)
	}
}

func TestUnixRefusesToReplace(t *testing.T) {
	t.Run("a regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "milter.sock")
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "milter"})
		if err == nil {
			l.Close()
			t.Fatal("Listen over a regular file succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("error %q does not say the path is not a socket", err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
			t.Errorf("the regular file was touched: %q, %v", b, err)
		}
	})
	t.Run("a socket in use", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "milter.sock")
		live, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "milter"})
		if err != nil {
			t.Fatal(err)
		}
		serve(t, live)
		l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "milter"})
		if err == nil {
			l.Close()
			t.Fatal("Listen over a live socket succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "another process is listening") {
			t.Errorf("error %q does not say the socket is in use", err)
		}
		if got := dialUnix(t, path); got != greeting {
			t.Errorf("the live listener no longer answers: read %q", got)
		}
	})
	t.Run("an unknown group", func(t *testing.T) {
		dir := t.TempDir()
		l, err := gatelisten.Listen("unix:"+filepath.Join(dir, "m.sock"), gatelisten.Options{Name: "milter", Group: "no-such-group-sg"})
		if err == nil {
			l.Close()
			t.Fatal("unknown group accepted")
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("a failed Listen left %v behind", left)
		}
	})
}

// TestUnixCloseKeepsAReplacement: when another instance has replaced the
// socket file, Close leaves the newer socket alone.
func TestUnixCloseKeepsAReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "milter.sock")
	l, err := gatelisten.Listen("unix:"+path, gatelisten.Options{Name: "milter"})
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.sock")
	staleSocket(t, other)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed the socket that replaced its own: %v", err)
	}
}
