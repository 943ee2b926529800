package guest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// FuzzFrame feeds arbitrary bytes to a server over a fresh connection; the
// server must not panic and must keep serving other connections. The server
// refuses Exec, ReadFile and WriteFile so random frames cannot touch the
// host. Seeds live in testdata/fuzz/FuzzFrame.
func FuzzFrame(f *testing.F) {
	const svc = wire.ServiceName
	f.Add(requestFrame(1, svc, "Ping", &agentpb.PingRequest{}))
	f.Add(append(requestFrame(1, svc, "Stat", &agentpb.StatRequest{Path: "/"}), requestFrame(3, svc, "ListDir", &agentpb.ListDirRequest{Path: "/"})...))
	f.Add(requestFrame(1, svc, "Exec", &agentpb.ExecInput{Msg: &agentpb.ExecInput_Start{Start: &agentpb.ExecStart{Args: []string{"true"}}}}))
	f.Add(append(requestFrame(1, svc, "WriteFile", nil), frame(1, 3, []byte{0x0a, 0x00})...))
	f.Add([]byte("PETTY-SYNC 0123\n"))
	f.Add([]byte{0, 0x40, 0, 1, 0, 0, 0, 1, 1, 0})

	_, sock := startServer(f, func(s *Server) { s.inertOnly = true })
	conn, err := dialAuth(sock, "")
	if err != nil {
		f.Fatal(err)
	}
	probe := agent.NewClient(conn)
	f.Cleanup(func() { probe.Close() })

	f.Fuzz(func(t *testing.T, input []byte) {
		conn, err := dialAuth(sock, "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		conn.Write(input)
		conn.(*net.UnixConn).CloseWrite()
		buf := make([]byte, 64<<10)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := probe.Ping(ctx); err != nil {
			t.Fatalf("agent stopped serving after %q: %v", input, err)
		}
	})
}
