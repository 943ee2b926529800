package main

import (
	"bytes"
	"testing"
)

var escapeTests = []struct {
	name, in, want string
}{
	{"plain", "hello, world\n", "hello, world\n"},
	{"tab and newline", "a\tb\nc", "a\tb\nc"},
	{"crlf", "line\r\nnext\r\n", "line\nnext\n"},
	{"lone cr", "progress\r50%", `progress\r50%`},
	{"csi color", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
	{"osc title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
	{"clear screen", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
	{"bell, backspace, nul", "\a\b\x00", `\x07\x08\x00`},
	{"del", "\x7f", `\x7f`},
	{"c1 csi as utf-8", "\u009b31m", `\u009b31m`},
	{"c1 raw byte", "\x9b31m", `\x9b31m`},
	{"invalid utf-8", "\xff\xfe", `\xff\xfe`},
	{"utf-8 kept", "héllo ✓ 日本", "héllo ✓ 日本"},
	{"truncated utf-8 at the end", "ab\xe2\x9c", `ab\xe2\x9c`},
}

func TestEscapeString(t *testing.T) {
	for _, tt := range escapeTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeString(tt.in); got != tt.want {
				t.Errorf("escapeString(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestEscaperSplits writes each input one byte at a time: sequences cut by
// Write boundaries are escaped as a whole.
func TestEscaperSplits(t *testing.T) {
	for _, tt := range escapeTests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			e := newEscaper(&out)
			for i := range len(tt.in) {
				if n, err := e.Write([]byte{tt.in[i]}); n != 1 || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("byte by byte %q → %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
