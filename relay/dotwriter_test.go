package relay

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// stuff writes chunks through dotWriter and returns the wire bytes.
func stuff(t testing.TB, chunks ...[]byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16)
	var d dotWriter
	d.reset(bw)
	for _, c := range chunks {
		if n, err := d.Write(c); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := d.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.Bytes()
}

// textprotoStuff is the reference: what go-smtp's client (net/textproto's
// DotWriter) put on the wire before.
func textprotoStuff(t testing.TB, chunks ...[]byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := textproto.NewWriter(bw).DotWriter()
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestDotWriter(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{name: "plain CRLF lines", chunks: []string{"a\r\nb\r\n"}, want: "a\r\nb\r\n.\r\n"},
		{name: "empty message", chunks: nil, want: "\r\n.\r\n"},
		{name: "line starting with a dot", chunks: []string{"a\r\n.b\r\n"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "first line starts with a dot", chunks: []string{".a\r\n"}, want: "..a\r\n.\r\n"},
		{name: "lone dot line", chunks: []string{"a\r\n.\r\nb\r\n"}, want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "two dots", chunks: []string{"..\r\n"}, want: "...\r\n.\r\n"},
		{name: "dot inside a line untouched", chunks: []string{"a.b\r\nc .\r\n"}, want: "a.b\r\nc .\r\n.\r\n"},
		{name: "no final CRLF", chunks: []string{"a\r\nb"}, want: "a\r\nb\r\n.\r\n"},
		{name: "ends in CR", chunks: []string{"a\r"}, want: "a\r\n.\r\n"},
		{name: "bare LF becomes CRLF", chunks: []string{"a\nb\n"}, want: "a\r\nb\r\n.\r\n"},
		{name: "bare LF then dot", chunks: []string{"a\n.b\n"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "bare CR kept", chunks: []string{"a\rb\r\n"}, want: "a\rb\r\n.\r\n"},
		{name: "CR CR LF", chunks: []string{"a\r\r\n"}, want: "a\r\r\r\n.\r\n"},
		{name: "dot line split across chunks", chunks: []string{"a\r\n", ".", "\r\n"}, want: "a\r\n..\r\n.\r\n"},
		{name: "CRLF split across chunks", chunks: []string{"a\r", "\n.b\r", "\n"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "CR run split across chunks", chunks: []string{"a\r", "\r", "\n"}, want: "a\r\r\r\n.\r\n"},
		{name: "empty chunks", chunks: []string{"", "a\r\n", ""}, want: "a\r\n.\r\n"},
		{name: "empty lines", chunks: []string{"\r\n\r\n\n"}, want: "\r\n\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tt.chunks {
				chunks = append(chunks, []byte(c))
			}
			got := stuff(t, chunks...)
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if ref := textprotoStuff(t, chunks...); !bytes.Equal(got, ref) {
				t.Errorf("got %q, textproto.DotWriter writes %q", got, ref)
			}
		})
	}
}

// FuzzDotWriter checks the bulk writer against textproto.DotWriter for any
// content split at any point.
func FuzzDotWriter(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n..b\r\nc"), 3)
	f.Add([]byte("\r\r\n\n.\r"), 1)
	f.Add([]byte(".\n.\r\n\r\r\r\n."), 6)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		got := stuff(t, b[:split], b[split:])
		if ref := textprotoStuff(t, b[:split], b[split:]); !bytes.Equal(got, ref) {
			t.Fatalf("content %q split at %d: got %q, textproto writes %q", b, split, got, ref)
		}
	})
}

func BenchmarkDotWriter(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 160)
	bw := bufio.NewWriterSize(discard{}, 32<<10)
	b.Run("bulk", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		var d dotWriter
		for b.Loop() {
			d.reset(bw)
			d.Write(body)
			d.close()
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		tw := textproto.NewWriter(bw)
		for b.Loop() {
			w := tw.DotWriter()
			w.Write(body)
			w.Close()
		}
	})
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
