package tcpfwd_test

import (
	"bufio"
	"net"
	"testing"

	"github.com/sendergate/sendergate/internal/tcpfwd"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

func TestCutAndRestore(t *testing.T) {
	f := tcpfwd.New(t, echoServer(t))
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(c, r, "hello"); err != nil || got != "hello\n" {
		t.Fatalf("through the forwarder: %q %v", got, err)
	}

	f.Cut()
	if got, err := roundTrip(c, r, "again"); err == nil {
		t.Errorf("a connection survived Cut: %q", got)
	}
	if c2, err := net.Dial("tcp", f.Addr()); err == nil {
		c2.Close()
		t.Error("a new connection was accepted after Cut")
	}

	f.Restore()
	c3, err := net.Dial("tcp", f.Addr())
	if err != nil {
		t.Fatalf("after Restore: %v", err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, bufio.NewReader(c3), "back"); err != nil || got != "back\n" {
		t.Errorf("after Restore: %q %v", got, err)
	}
}
