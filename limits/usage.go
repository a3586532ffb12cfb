package limits

import (
	"context"
	"fmt"
	"time"
)

// WindowUsage is one scope's current window as a usage report shows it.
type WindowUsage struct {
	Window     Window
	Start, End time.Time
	Limit      int64 // 0: none
	// Count is what every instance has settled plus what this instance
	// admitted since its last sync (other instances settle theirs within
	// a sync interval).
	Count int64
	// Reserved is budget instances hold as slices beyond Count: admitted
	// by another instance since its last sync, or not used yet.
	Reserved int64
}

// Usage is one scope's counts in its current windows.
type Usage struct {
	Scope   Scope
	Windows [numWindows]WindowUsage
	// RefusedToday is how many recipients were refused (451 4.7.0) since
	// 00:00 UTC.
	RefusedToday int64
}

// Usage reports the current windows of scopes, all of organization orgID,
// with one read of the store.
func (l *Limiter) Usage(ctx context.Context, orgID string, scopes []Scope) ([]Usage, error) {
	now := l.opts.Now()
	var starts Starts
	for w := Minute; w < numWindows; w++ {
		starts[w] = w.Start(now).UnixMilli()
	}
	rows, err := l.st.Counters(ctx, orgID, starts)
	if err != nil {
		return nil, fmt.Errorf("limits: usage: %w", err)
	}
	byKey := make(map[Key]Row, len(rows))
	for _, r := range rows {
		byKey[r.Key] = r
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Usage, len(scopes))
	for i, s := range scopes {
		out[i].Scope = s
		for w := Minute; w < numWindows; w++ {
			k := Key{Kind: s.Kind, ID: s.ID, Window: w, Start: starts[w]}
			row := byKey[k]
			wu := WindowUsage{Window: w, Start: time.UnixMilli(starts[w]).UTC(), Limit: s.Limits[w], Count: row.Used}
			wu.End = wu.Start.Add(w.Length())
			var local, refused int64
			if c := l.counters[k]; c != nil {
				local, refused = c.used, c.refused
			}
			wu.Count = max(0, row.Used+local)
			wu.Reserved = max(0, row.Leased-max(local, 0))
			out[i].Windows[w] = wu
			if w == Day {
				out[i].RefusedToday = row.Refused + refused
			}
		}
	}
	return out, nil
}
