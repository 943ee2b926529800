package main

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/pettyvm/petty/agent/agentpb"
)

var peerStart = time.Now()

// pingResponse is what every Ping server in this benchmark answers, the same
// fields as petty's agent.
func pingResponse() *agentpb.PingResponse {
	return &agentpb.PingResponse{Version: "dev", UptimeNs: int64(time.Since(peerStart)), Pid: int64(os.Getpid())}
}

// serveTTRPC is the ttrpc floor: a bare ttrpc server with only Ping, the
// same service and method names as the agent, none of petty's wrappers
// (no frame guard, no connection tracking).
func serveTTRPC(ln net.Listener) error {
	s, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	s.RegisterService("petty.agent.v1.Agent", &ttrpc.ServiceDesc{
		Methods: map[string]ttrpc.Method{
			"Ping": func(ctx context.Context, unmarshal func(any) error) (any, error) {
				var req agentpb.PingRequest
				if err := unmarshal(&req); err != nil {
					return nil, err
				}
				return pingResponse(), nil
			},
		},
	})
	return s.Serve(context.Background(), ln)
}

// ttrpcPing returns a function doing one Ping with a bare ttrpc client.
func ttrpcPing(ctx context.Context, c *ttrpc.Client) func() error {
	return func() error {
		var resp agentpb.PingResponse
		return c.Call(ctx, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{}, &resp)
	}
}

// pingFrameSizes returns the sizes on the wire (10-byte header included)
// of a ttrpc Ping request and of its response.
func pingFrameSizes() (req, resp int) {
	r, _ := protoMarshal(&ttrpc.Request{Service: "petty.agent.v1.Agent", Method: "Ping"})
	p, _ := protoMarshal(pingResponse())
	s, _ := protoMarshal(&ttrpc.Response{Payload: p})
	return 10 + len(r), 10 + len(s)
}
