package relay

import (
	"bufio"
	"bytes"
)

// dot-stuffing states, as in net/textproto's dotWriter.
const (
	stBegin     = iota // nothing written yet
	stBeginLine        // at the start of a line
	stData             // inside a line
	stCR               // right after a '\r' that may end the line
)

// dotWriter writes message content in the SMTP DATA encoding (RFC 5321
// 4.5.2: a line starting with '.' gets another '.'; the content ends with
// CRLF.CRLF) into a bufio.Writer. Its output is byte for byte that of
// textproto.DotWriter, including its handling of bare LF (written as CRLF)
// and runs of '\r' before '\n', but it copies the runs between the few
// places that change instead of going byte by byte: a '\n' not preceded by
// the '\r' that ends a line, and a '.' at the start of a line.
type dotWriter struct {
	w     *bufio.Writer
	state int
}

// reset starts a new message on w.
func (d *dotWriter) reset(w *bufio.Writer) {
	d.w = w
	d.state = stBegin
}

// crEnds reports whether the '\r' bytes right before b[end] leave
// textproto's state machine in its CR state, where a '\n' needs no '\r'
// added: an odd run of them, where a run reaching b[0] continues one that
// began before b (in is the state before b[0]).
func crEnds(b []byte, end int, in int) bool {
	k := end
	for k > 0 && b[k-1] == '\r' {
		k--
	}
	r := end - k
	if k == 0 && in == stCR {
		r++
	}
	return r%2 == 1
}

// Write implements io.Writer. Errors are those of the bufio.Writer, which
// keeps the first one.
func (d *dotWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	in := d.state
	w := d.w
	start := 0 // b[start:] is not written yet
	if (in == stBegin || in == stBeginLine) && b[0] == '.' {
		w.WriteByte('.')
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		nl := i + j
		if !crEnds(b, nl, in) {
			w.Write(b[start:nl])
			w.WriteString("\r\n")
			start = nl + 1
		}
		if nl+1 < len(b) && b[nl+1] == '.' {
			w.Write(b[start : nl+1])
			w.WriteByte('.')
			start = nl + 1
		}
		i = nl + 1
	}
	if _, err := w.Write(b[start:]); err != nil {
		return 0, err
	}
	switch {
	case b[len(b)-1] == '\n':
		d.state = stBeginLine
	case crEnds(b, len(b), in):
		d.state = stCR
	default:
		d.state = stData
	}
	return len(b), nil
}

// close writes the end of the content (completing the last line as
// textproto does) and flushes.
func (d *dotWriter) close() error {
	switch d.state {
	case stCR:
		d.w.WriteString("\n.\r\n")
	case stBeginLine:
		d.w.WriteString(".\r\n")
	default: // stData, and stBegin: an empty message is one empty line
		d.w.WriteString("\r\n.\r\n")
	}
	return d.w.Flush()
}
