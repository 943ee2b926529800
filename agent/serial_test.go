package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestSerialHandshakeCancel(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go io.Copy(io.Discard, b) // a port nobody answers on
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := SerialHandshake(ctx, a)
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SerialHandshake = %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("conn not closed after failed handshake: %v", err)
	}
}
