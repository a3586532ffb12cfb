package loader

import (
	"strings"
	"testing"
)

// TestArena: strings from an arena keep their contents when later ones
// are carved from the same chunk or a new one, whatever their size.
func TestArena(t *testing.T) {
	var a arena
	var got, want []string
	for i := range 20000 {
		parts := []string{strings.Repeat("x", i%97), "-", strings.Repeat("y", i%13)}
		if i%5000 == 0 {
			parts = append(parts, strings.Repeat("z", arenaChunk/4)) // its own allocation
		}
		got = append(got, a.concat(parts...))
		want = append(want, strings.Join(parts, ""))
	}
	if a.concat() != "" || a.concat("", "") != "" {
		t.Error("an empty concatenation is not the empty string")
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d = %.40q..., want %.40q...", i, got[i], want[i])
		}
	}
}
