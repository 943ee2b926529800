package agent_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/guest"
)

// BenchmarkPing measures a Ping round trip to an in-process agent over a
// unix socket.
func BenchmarkPing(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &guest.Server{}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	defer func() { srv.Close(); <-done }()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	c := agent.NewClient(conn)
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
