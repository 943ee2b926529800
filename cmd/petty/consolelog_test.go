package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8388608", 8 << 20, true},
		{"8MiB", 8 << 20, true},
		{"8M", 8 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"", 0, false},
		{"-1", 0, false},
		{"8MB", 0, false},
		{"lots", 0, false},
		{"99999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestConsoleLogRotates writes far more than the limit in writes of
// various sizes: both generations together never exceed the limit, and the
// newest bytes are kept.
func TestConsoleLogRotates(t *testing.T) {
	const limit = 16 << 10
	path := filepath.Join(t.TempDir(), consoleLogName)
	var l consoleLog
	l.open(path, limit)
	defer l.close()
	var all bytes.Buffer
	for i := range 3000 {
		line := fmt.Sprintf("line %d %s\n", i, bytes.Repeat([]byte("x"), i%97))
		all.WriteString(line)
		if n, err := l.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		cur, _ := os.Stat(path)
		old, _ := os.Stat(path + ".1")
		total := cur.Size()
		if old != nil {
			total += old.Size()
		}
		if total > limit {
			t.Fatalf("after %d lines: %d bytes on disk, limit %d", i+1, total, limit)
		}
	}
	// One write larger than the limit keeps its tail.
	big := bytes.Repeat([]byte("y"), 3*limit)
	l.Write(big)
	cur, _ := os.ReadFile(path)
	if len(cur) != limit/2 || !bytes.Equal(cur, big[len(big)-limit/2:]) {
		t.Errorf("after a huge write: %d bytes, want the last %d", len(cur), limit/2)
	}
	old, _ := os.ReadFile(path + ".1")
	if !bytes.HasSuffix(all.Bytes(), old) || len(old) == 0 {
		t.Errorf("console.log.1 (%d bytes) is not the tail of what was written before", len(old))
	}
}
