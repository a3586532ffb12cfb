package smtpd

import "time"

// Reply batching (RFC 2920 3.2). go-smtp writes every reply line with a
// flush of its own: one write system call per line, nine for the reply to
// EHLO, one per command when a client pipelines MAIL, RCPT and DATA.
// trackedConn instead keeps what go-smtp writes and sends it when the
// connection is next read, closed or aborted, so every group of replies
// goes out in one write. That is exactly the moment RFC 2920 3.2 (7)
// requires: go-smtp reads the socket only once its input buffer is empty,
// and a read of the socket is the only place where the session can block
// waiting for the client (a client that does not pipeline therefore gets
// every reply before the server waits for its next command).

// maxBatch bounds the replies held per connection; beyond it they are
// written at once (a client pipelining thousands of NOOPs).
const maxBatch = 4 << 10

// Write implements net.Conn: p is kept with the replies not yet sent
// (see flush). An error of the write that sends them comes from flush.
func (c *trackedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.wbuf)+len(p) > maxBatch {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxBatch {
			return c.Conn.Write(p)
		}
	}
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

// flush writes the replies held, in one write, within the write deadline
// go-smtp set for the last of them.
func (c *trackedConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *trackedConn) flushLocked() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// closeFlushTimeout bounds sending the replies held when the connection
// closes, as crypto/tls bounds its close_notify alert.
const closeFlushTimeout = 5 * time.Second

// flushBeforeClose sends the replies held before the connection closes
// (221 to QUIT, the reply to DATA during a shutdown). It sets its own
// write deadline: crypto/tls's Close leaves an expired one after its
// close_notify alert, which is held here too. When another goroutine is
// writing (a client that does not read, held up to the write deadline) it
// does not wait: closing is what ends that write.
func (c *trackedConn) flushBeforeClose() {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if len(c.wbuf) > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		_ = c.flushLocked()
	}
}
