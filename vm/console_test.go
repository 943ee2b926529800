package vm

import (
	"bytes"
	"testing"
)

func TestConsoleKeepsTail(t *testing.T) {
	var copy bytes.Buffer
	c := newConsole(&copy)
	var all []byte
	for i := 0; i < 3000; i++ {
		line := []byte("line " + string(rune('a'+i%26)) + " of the console\n")
		all = append(all, line...)
		c.Write(line)
	}
	big := bytes.Repeat([]byte("Z"), consoleTailSize+10)
	all = append(all, big...)
	c.Write(big)
	c.Write([]byte("end"))
	all = append(all, "end"...)
	if got, want := c.Tail(consoleTailSize), all[len(all)-consoleTailSize:]; !bytes.Equal(got, want) {
		t.Errorf("Tail mismatch: got %d bytes ending %q", len(got), got[len(got)-10:])
	}
	if got := c.Tail(3); string(got) != "end" {
		t.Errorf("Tail(3) = %q", got)
	}
	if !bytes.Equal(copy.Bytes(), all) {
		t.Error("copy writer did not get everything")
	}
}
