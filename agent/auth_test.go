package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent/wire"
)

// TestAuthenticateBounded: Authenticate reads nothing past the OK line, and
// a silent peer is bounded by ctx.
func TestAuthenticateBounded(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	go func() {
		wire.ReadAuthLine(guest)
		guest.Write([]byte(wire.AuthOK + "FRAMES"))
	}()
	if err := Authenticate(testContext(t), host, "t"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := io.ReadFull(host, b); err != nil || string(b) != "FRAMES" {
		t.Fatalf("after auth: %q, %v", b, err)
	}

	host, guest = net.Pipe()
	defer guest.Close()
	go io.Copy(io.Discard, guest) // reads the line, never answers
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Authenticate(ctx, host, "t")
	if !errors.Is(err, ErrAuth) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent peer: %v, want ErrAuth and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	for _, bad := range []string{"two words", "new\nline", strings.Repeat("x", MaxTokenLen+1), `quo"te`} {
		a, b := net.Pipe()
		if err := Authenticate(testContext(t), a, bad); !errors.Is(err, ErrAuth) {
			t.Errorf("token %q: %v, want ErrAuth", bad, err)
		}
		b.Close()
	}
}

// TestAuthenticateAnswers: the agent's answers map to the host's errors.
func TestAuthenticateAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer string // "" closes the connection
		want   error
	}{
		{"ok", wire.AuthOK, nil},
		{"serial refusal", wire.AuthNo, ErrRefused},
		{"close", "", ErrRefused},
		{"garbage", "HELLO-XYZ\n", ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer guest.Close()
			go func() {
				wire.ReadAuthLine(guest)
				if tt.answer == "" {
					guest.Close()
					return
				}
				guest.Write([]byte(tt.answer))
			}()
			err := Authenticate(testContext(t), host, "tok")
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				host.Close()
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate = %v, want %v", err, tt.want)
			}
			if tt.want == ErrAuth && errors.Is(err, ErrRefused) {
				t.Fatalf("Authenticate = %v: a garbled answer is not a refusal", err)
			}
		})
	}
}
