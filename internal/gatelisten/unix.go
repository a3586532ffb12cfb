package gatelisten

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// maxSocketPath is the longest path a Linux unix socket can be bound to
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// unixListener is a unix socket that removes its file on Close, and only
// while the file is still the one it created (a newer instance may have
// replaced it).
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	fi   fs.FileInfo
	once sync.Once
}

// listenUnix creates the socket at path with mode mode and group group.
//
// The socket is bound inside a fresh mode-0700 directory next to path,
// given its group and mode there, and renamed into place: at no moment
// does path exist with looser permissions than the final ones, whatever
// the process umask. The rename also replaces a stale socket atomically.
func listenUnix(path, group string, mode fs.FileMode) (net.Listener, error) {
	gid := -1
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".sg")
	if err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	if len(bound) > maxSocketPath {
		return nil, fmt.Errorf("socket path too long: it is bound as %s first, longer than %d bytes; choose a shorter directory", bound, maxSocketPath)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ul.SetUnlinkOnClose(false) // the file moves; Close removes it by its final name
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(bound, -1, gid); err != nil {
			return fail(fmt.Errorf("give socket to group %s: %w (the daemon must run as root or be a member of the group)", group, err))
		}
	}
	if err := os.Chmod(bound, mode); err != nil {
		return fail(fmt.Errorf("chmod socket: %w", err))
	}
	if err := os.Rename(bound, path); err != nil {
		return fail(fmt.Errorf("move socket into place: %w", err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ul, addr: &net.UnixAddr{Name: path, Net: "unix"}, fi: fi}, nil
}

// Addr is the socket's path (not the temporary name it was bound under).
func (l *unixListener) Addr() net.Addr { return l.addr }

// Close stops accepting and removes the socket file.
func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		cur, serr := os.Lstat(l.addr.Name)
		if serr != nil || !os.SameFile(cur, l.fi) {
			return // gone, or replaced by another instance's socket
		}
		if rerr := os.Remove(l.addr.Name); rerr != nil && err == nil {
			err = rerr
		}
	})
	return err
}

// checkStale allows path to be (re)created: it must not exist, or be a
// socket nobody listens on any more (left by a crash). A file that is not
// a socket, or a socket in use, is an error: never remove what is not ours.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process is listening on this socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the existing socket is stale: %w", path, err)
	}
	return nil
}

// lookupGroup resolves a group name or numeric gid.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("socket group: %w", err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("socket group %s: gid %q: %w", group, g.Gid, err)
	}
	return gid, nil
}
