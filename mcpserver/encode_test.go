package mcpserver

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestWireCost checks wireCost against encoding/json twice over, as a
// result travels (structured content, then the text block of that JSON).
func TestWireCost(t *testing.T) {
	inputs := []string{
		"hello", "\x00\x01\x1f", `"\`, "\n\r\t", "<>&", "é€😀", "\u2028\u2029", "\xff\xfe",
		strings.Repeat("\x00", 1000),
	}
	for _, in := range inputs {
		s, cost, cut := capText([]byte(in), 1<<30)
		if cut {
			t.Fatalf("%q cut", in)
		}
		once, _ := json.Marshal(s)
		twice, _ := json.Marshal(string(once))
		// The quotes themselves are not the payload's: 2 once, 2+4 twice.
		if got := len(once) - 2 + len(twice) - 2 - 4; got != cost {
			t.Errorf("%q: wire cost %d, encoding/json says %d", in, cost, got)
		}
	}
}

func TestCapOutputBoundsEncodedSize(t *testing.T) {
	nul := bytes.Repeat([]byte{0}, MaxRawOutput)
	out, errS, cut := capOutput(nul, nul)
	if !cut {
		t.Error("1 MiB of NULs twice not cut")
	}
	msg, _ := json.Marshal(map[string]string{"stdout": out, "stderr": errS})
	text, _ := json.Marshal(string(msg))
	if total := len(msg) + len(text); total > MaxEncodedPayload+1024 {
		t.Errorf("encoded %d bytes, over %d", total, MaxEncodedPayload)
	}
}
