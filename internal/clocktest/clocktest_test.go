package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/clocktest"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		move func(c *clocktest.Clock)
		want time.Time
	}{
		{name: "reads the start time", move: func(*clocktest.Clock) {}, want: t0},
		{name: "set forwards", move: func(c *clocktest.Clock) { c.Set(t0.Add(time.Hour)) }, want: t0.Add(time.Hour)},
		{name: "set backwards", move: func(c *clocktest.Clock) { c.Set(t0.Add(-time.Hour)) }, want: t0.Add(-time.Hour)},
		{name: "add adds up", move: func(c *clocktest.Clock) { c.Add(time.Minute); c.Add(2 * time.Minute) }, want: t0.Add(3 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clocktest.New(t0)
			tt.move(c)
			if got := c.Now(); !got.Equal(tt.want) {
				t.Fatalf("Now() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestClockConcurrent: readers and a writer at once (meaningful under -race).
func TestClockConcurrent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clocktest.New(t0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = c.Now()
			}
		}()
	}
	for range 100 {
		c.Add(time.Second)
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(100*time.Second); !got.Equal(want) {
		t.Fatalf("Now() = %v, want %v", got, want)
	}
}
