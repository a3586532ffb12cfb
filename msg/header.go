// Package msg handles the RFC 5322 message content of submitted mail for
// the gate that the SMTP submission server and the milter share: it reads
// the header block byte-exact (so DKIM, RFC 6376, signs exactly what is
// sent), extracts the author identities the policy checks (From and Sender,
// RFC 5322 3.6.2, Resent-From and Resent-Sender, RFC 5322 3.6.6, with
// RFC 2047 encoded words in display names), normalises addresses for
// comparison (package dnsname: IDNA, RFC 5890/5891), checks the body's
// line structure and applies the submission rewrites (Return-Path removal,
// Message-ID, Date and the RFC 5321 4.4 Received trace field).
//
// Lines are limited to 998 octets (RFC 5322 2.1.1) in the header and, with
// CheckBody, in the body: a hop that wraps a longer line breaks the DKIM
// signature. A bare CR (not followed by LF) is refused anywhere in the
// message, because servers disagree on whether it ends a line (the SMTP
// smuggling class of attacks). Every such refusal is 550 5.6.0.
package msg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxLineOctets is the longest header line accepted, excluding the CRLF
// (RFC 5322 2.1.1).
const MaxLineOctets = 998

// MaxHeaderBytes bounds the header block read by ReadHeader.
const MaxHeaderBytes = 1 << 20

// foldWidth is the line length Add folds at (RFC 5322 2.1.1 "SHOULD" 78).
const foldWidth = 78

// Field is one raw header field, kept byte-exact (including folding and
// the final CRLF) so DKIM can sign what is sent.
type Field struct {
	// Name is the field name as written (case preserved), without the
	// colon and without any whitespace before the colon.
	Name string
	// Raw is "Name: value\r\n" including continuation lines.
	Raw []byte
}

// Header is the ordered list of header fields of one message.
type Header struct {
	Fields []Field
}

// ReadHeader reads the header block from r up to and including the empty
// line; the reader is left at the first byte of the body. LF and CRLF line
// endings are accepted and every field is stored with CRLF. A line longer
// than 998 octets fails with ErrLineTooLong, a header block over
// MaxHeaderBytes with ErrHeaderTooLarge, and a line that is neither a field
// nor a continuation, or that holds a bare CR or a NUL, with a 550 5.6.0
// *Error. Input without an empty line is all header.
func ReadHeader(r *bufio.Reader) (*Header, error) {
	h := &Header{}
	total := 0
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("msg: header line %d: %w", n, err)
		}
		if len(line) == 0 {
			return h, nil // the empty line, or the end of input
		}
		total += len(line) + 2
		if total > MaxHeaderBytes {
			return nil, fmt.Errorf("msg: header line %d: %w", n, ErrHeaderTooLarge)
		}
		if perr := h.addLine(line, n); perr != nil {
			return nil, perr
		}
		if err != nil {
			return h, nil // io.EOF after a last line without line ending
		}
	}
}

// addLine appends one header line (without its line ending) to h.
func (h *Header) addLine(line []byte, n int) error {
	if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, 0) >= 0 {
		// RFC 5322 2.2 and 2.3: CR only as part of CRLF, no NUL. A bare CR
		// is a line break to some software and not to others.
		return fmt.Errorf("msg: header line %d: %w", n,
			invalidf("header line %d contains a bare CR (a CR not followed by LF) or a NUL, which servers read differently; end every line with CRLF (RFC 5322 2.2)", n))
	}
	raw := append(line, '\r', '\n')
	if line[0] == ' ' || line[0] == '\t' {
		// RFC 5322 2.2.3: a continuation line of the previous field.
		if len(h.Fields) == 0 {
			return fmt.Errorf("msg: header line %d: %w", n,
				invalidf("message header starts with a continuation line (RFC 5322 2.2.3)"))
		}
		last := &h.Fields[len(h.Fields)-1]
		last.Raw = append(last.Raw, raw...)
		return nil
	}
	name, ok := fieldName(line)
	if !ok {
		return fmt.Errorf("msg: header line %d: %w", n,
			invalidf("header line %d is not a header field (RFC 5322 2.2); separate header and body with an empty line", n))
	}
	h.Fields = append(h.Fields, Field{Name: name, Raw: raw})
	return nil
}

// fieldName returns the name of the field starting raw, or false when raw
// does not start with a valid field name and colon (RFC 5322 3.6.8 ftext).
// Whitespace before the colon (obs-optional, RFC 5322 4.5.8) is dropped
// from the name so that "From :" counts as a From field.
func fieldName(raw []byte) (string, bool) {
	colon := bytes.IndexByte(raw, ':')
	if colon < 0 {
		return "", false
	}
	name := bytes.TrimRight(raw[:colon], " \t")
	if len(name) == 0 {
		return "", false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return "", false
		}
	}
	return string(name), true
}

// readLine returns the next line without its LF or CRLF ending. It returns
// io.EOF with the last, unterminated line (possibly empty) at end of input.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > MaxLineOctets+2 {
			return nil, ErrLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read: %w", err)
		}
		if err == nil {
			line = line[:len(line)-1]
			line = bytes.TrimSuffix(line, []byte{'\r'})
		}
		if len(line) > MaxLineOctets {
			return nil, ErrLineTooLong
		}
		return line, err
	}
}

// Get returns the unfolded values (RFC 5322 2.2.3) of every field named
// name, compared case-insensitively, with surrounding blanks removed.
func (h *Header) Get(name string) [][]byte {
	var values [][]byte
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			values = append(values, f.value())
		}
	}
	return values
}

// value returns the unfolded value of f.
func (f Field) value() []byte {
	v := f.Raw
	if colon := bytes.IndexByte(v, ':'); colon >= 0 {
		v = v[colon+1:]
	}
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	return bytes.Trim(v, " \t")
}

// Del removes every field named name (case-insensitive).
func (h *Header) Del(name string) {
	kept := h.Fields[:0]
	for _, f := range h.Fields {
		if !strings.EqualFold(f.Name, name) {
			kept = append(kept, f)
		}
	}
	clear(h.Fields[len(kept):])
	h.Fields = kept
}

// Add appends a field, folded at spaces when longer than 78 octets. CR and
// LF in value are replaced by spaces so a value cannot inject a field.
func (h *Header) Add(name, value string) {
	h.Fields = append(h.Fields, Field{Name: name, Raw: fold(name, value)})
}

// Prepend inserts a complete raw field ("Name: value\r\n", possibly
// folded) before every other field, as trace and DKIM-Signature fields
// are added (RFC 5321 4.4, RFC 6376 5.6). A missing final CRLF is added.
func (h *Header) Prepend(raw []byte) {
	r := append([]byte(nil), raw...)
	if !bytes.HasSuffix(r, []byte("\r\n")) {
		r = append(r, '\r', '\n')
	}
	name, _ := fieldName(r)
	h.Fields = append([]Field{{Name: name, Raw: r}}, h.Fields...)
}

// Size is the number of octets WriteTo writes: every field and the empty
// line after them.
func (h *Header) Size() int {
	n := 2
	for _, f := range h.Fields {
		n += len(f.Raw)
	}
	return n
}

// WriteTo writes every field byte-exact followed by the empty line that
// ends the header, so the body can be written right after it.
func (h *Header) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, f := range h.Fields {
		n, err := w.Write(f.Raw)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("msg: write header: %w", err)
		}
	}
	n, err := io.WriteString(w, "\r\n")
	total += int64(n)
	if err != nil {
		return total, fmt.Errorf("msg: write header: %w", err)
	}
	return total, nil
}

// lineBreaks turns the CR and LF of a value given to fold into spaces.
var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

// fold formats "name: value\r\n", breaking before spaces so that lines stay
// within 78 octets where the words allow it (RFC 5322 2.2.3).
func fold(name, value string) []byte {
	value = lineBreaks.Replace(value)
	var b bytes.Buffer
	b.WriteString(name)
	b.WriteString(":")
	lineLen := b.Len()
	for i, word := range strings.Split(value, " ") {
		if i > 0 && word != "" && lineLen+1+len(word) > foldWidth {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		lineLen += 1 + len(word)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
