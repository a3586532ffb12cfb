package smtp

import (
	"bufio"
	"bytes"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// refDataReader is dataReader.Read as go-smtp v0.25.1 ships it (a byte at
// a time): the reference the patched reader must match.
type refDataReader struct {
	r     *bufio.Reader
	state int
}

func (r *refDataReader) Read(b []byte) (n int, err error) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	return
}

// readAll reads r with reads of size chunk and returns the content, the
// error that ended it, and what is left in the connection's buffer.
func readAll(r io.Reader, br *bufio.Reader, chunk int) (string, string, string) {
	var out bytes.Buffer
	buf := make([]byte, chunk)
	var err error
	for {
		var n int
		n, err = r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	rest, _ := io.ReadAll(br)
	return out.String(), err.Error(), string(rest)
}

func checkSame(t *testing.T, input string, bufSize, chunk int) {
	t.Helper()
	refBR := bufio.NewReaderSize(strings.NewReader(input), bufSize)
	want, wantErr, wantRest := readAll(&refDataReader{r: refBR}, refBR, chunk)
	br := bufio.NewReaderSize(strings.NewReader(input), bufSize)
	got, gotErr, gotRest := readAll(&dataReader{r: br}, br, chunk)
	if got != want || gotErr != wantErr || gotRest != wantRest {
		t.Fatalf("input %q (buffer %d, reads of %d):\n got %q, %s, rest %q\nwant %q, %s, rest %q",
			input, bufSize, chunk, got, gotErr, gotRest, want, wantErr, wantRest)
	}
}

// TestDataReaderMatchesReference: the bulk path gives the same content,
// the same end and leaves the same input unread as the byte-at-a-time
// reader, across buffer and read sizes.
func TestDataReaderMatchesReference(t *testing.T) {
	inputs := []string{
		"",
		".\r\n",
		"a\r\n.\r\n",
		"Subject: x\r\n\r\nbody line\r\n..dot-stuffed\r\n.\r\nMAIL FROM:<a@b>\r\n",
		"bare\nlf\n.\n\r\n.\r\nQUIT\r\n",
		"cr\ronly\r\r\n.x\r\n.\r\r\n.\r\n",
		"no end marker",
		"line\r\n.\r",
		strings.Repeat("0123456789abcdef", 700) + "\r\n.\r\nNEXT\r\n",
	}
	for _, in := range inputs {
		for _, bufSize := range []int{16, 17, 64, 4096} {
			for _, chunk := range []int{1, 3, 100, 8192} {
				checkSame(t, in, bufSize, chunk)
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := "ab.\r\n"
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.Intn(200))
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		checkSame(t, string(b)+"\r\n.\r\nTAIL", 16+rng.Intn(48), 1+rng.Intn(64))
	}
}

// FuzzDataReader compares the patched reader with the reference.
func FuzzDataReader(f *testing.F) {
	f.Add("a\r\n..b\r\n.\r\nQUIT\r\n", 16, 7)
	f.Fuzz(func(t *testing.T, in string, bufSize, chunk int) {
		if bufSize < 16 || bufSize > 8192 || chunk < 1 || chunk > 8192 {
			t.Skip()
		}
		checkSame(t, in, bufSize, chunk)
	})
}

// BenchmarkDataReader reads a 10 KiB message of 76-octet lines.
func BenchmarkDataReader(b *testing.B) {
	line := strings.Repeat("x", 74) + "\r\n"
	msg := strings.Repeat(line, 10240/len(line)) + ".\r\n"
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(msg)))
	for _, tc := range []struct {
		name string
		r    func(*bufio.Reader) io.Reader
	}{
		{"patched", func(br *bufio.Reader) io.Reader { return &dataReader{r: br} }},
		{"v0.25.1", func(br *bufio.Reader) io.Reader { return &refDataReader{r: br} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				br := bufio.NewReaderSize(strings.NewReader(msg), 4096)
				r := tc.r(br)
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

// TestDataReaderLimit: with a size limit, the bulk path stops at the limit
// as the byte loop did: the first n octets, then ErrDataTooLarge.
func TestDataReaderLimit(t *testing.T) {
	body := strings.Repeat("0123456789", 100) + "\r\n.\r\n"
	for _, limit := range []int64{1, 9, 10, 11, 500, 1000} {
		br := bufio.NewReaderSize(strings.NewReader(body), 64)
		r := &dataReader{r: br, limited: true, n: limit}
		got, err := io.ReadAll(r)
		if err != ErrDataTooLarge || int64(len(got)) != limit || string(got) != body[:limit] {
			t.Errorf("limit %d: read %d octets, %v; want %d octets, ErrDataTooLarge", limit, len(got), err, limit)
		}
	}
}
