package sandbox

import (
	"strings"
	"testing"
)

func TestRing(t *testing.T) {
	tests := []struct {
		writes      []string
		want        string
		wantDropped int64
	}{
		{[]string{"ab", "cd"}, "abcd", 0},
		{[]string{"abcde"}, "abcde", 0},
		{[]string{"abcdefg"}, "cdefg", 2},
		{[]string{"abc", "def"}, "bcdef", 1},
		{[]string{"abcde", "f", "gh"}, "defgh", 3},
		{[]string{"abcd", "efghijklm", "n"}, "jklmn", 9},
		{[]string{strings.Repeat("x", 3), "yy", "z"}, "xxyyz", 1},
	}
	for _, tt := range tests {
		r := newRing(5)
		for _, w := range tt.writes {
			if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		got, dropped := r.Bytes()
		if string(got) != tt.want || dropped != tt.wantDropped {
			t.Errorf("%q: got %q dropped %d, want %q dropped %d", tt.writes, got, dropped, tt.want, tt.wantDropped)
		}
	}
}
