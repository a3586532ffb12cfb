package smtpd_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/smtpd"
)

// benchMessage is a 10 KiB message from the verified domain.
var benchMessage = "From: a@news.example.com\r\nTo: r@example.net\r\nSubject: bench\r\n\r\n" +
	strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128)

// BenchmarkSubmit measures one submission end to end over loopback: the
// client's DATA, the policy, RSA-2048 signing and the relay to the
// in-process upstream, which replies before the client gets its 250.
func BenchmarkSubmit(b *testing.B) {
	quiet := withConfig(func(c *smtpd.Config) { c.Logger = slog.New(slog.DiscardHandler) })
	b.Run("1conn", func(b *testing.B) {
		f := testServer(b, quiet)
		c := f.authenticated(b)
		b.SetBytes(int64(len(benchMessage)))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if reply := mustSend(b, c, benchMessage); reply.Code != 250 {
				b.Fatalf("reply %v", reply)
			}
			if n++; n%1000 == 0 {
				f.upstream.ClearMessages()
			}
		}
	})
	b.Run("8conns", func(b *testing.B) {
		f := testServer(b, quiet)
		b.SetBytes(int64(len(benchMessage)))
		b.ReportAllocs()
		b.SetParallelism(4) // 4 x GOMAXPROCS client connections
		b.RunParallel(func(pb *testing.PB) {
			c := f.authenticated(b)
			for pb.Next() {
				reply, err := send(c, benchMessage)
				if err != nil || reply.Code != 250 {
					b.Errorf("send: %v %v", reply, err)
					return
				}
			}
		})
	})
}
