package logtest_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sendergate/sendergate/internal/logtest"
)

// TestBufferConcurrentLogger: lines logged from several goroutines all
// arrive whole (meaningful under -race).
func TestBufferConcurrentLogger(t *testing.T) {
	var buf logtest.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				logger.Info("hello", "g", g, "i", i)
				_ = buf.String()
			}
		}()
	}
	wg.Wait()
	out := buf.String()
	if n := strings.Count(out, "msg=hello"); n != 100 {
		t.Fatalf("%d lines logged, want 100:\n%s", n, out)
	}
	for g := range 4 {
		if !strings.Contains(out, fmt.Sprintf("g=%d i=24", g)) {
			t.Errorf("last line of goroutine %d missing", g)
		}
	}
}
