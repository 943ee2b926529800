package guest

import (
	"context"
	"io/fs"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// service implements the agent's methods (agent.proto's service Agent) for
// a Server.
type service struct {
	srv *Server
}

// finalWait bounds how long a streaming handler waits for the client to close
// its side after the final message.
const finalWait = 10 * time.Second

func (s *service) Ping(ctx context.Context, _ *agentpb.PingRequest) (*agentpb.PingResponse, error) {
	return &agentpb.PingResponse{
		Version:  Version,
		UptimeNs: int64(time.Since(processStart)),
		Pid:      int64(os.Getpid()),
	}, nil
}

func (s *service) Shutdown(ctx context.Context, req *agentpb.ShutdownRequest) (*agentpb.ShutdownResponse, error) {
	s.srv.logger().Info("shutdown requested", "reboot", req.Reboot)
	s.srv.requestShutdown(req.Reboot)
	return &agentpb.ShutdownResponse{}, nil
}

func (s *service) Stat(ctx context.Context, req *agentpb.StatRequest) (*agentpb.StatResponse, error) {
	if req.Path == "" {
		return nil, errorf(wire.InvalidArgument, "empty path")
	}
	fi, err := os.Stat(req.Path)
	if err != nil {
		return nil, err
	}
	return &agentpb.StatResponse{Info: fileInfoPB(fi)}, nil
}

func (s *service) ListDir(ctx context.Context, req *agentpb.ListDirRequest) (*agentpb.ListDirResponse, error) {
	if req.Path == "" {
		return nil, errorf(wire.InvalidArgument, "empty path")
	}
	ents, err := os.ReadDir(req.Path)
	if err != nil {
		return nil, err
	}
	resp := &agentpb.ListDirResponse{Entries: make([]*agentpb.FileInfo, 0, len(ents))}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		resp.Entries = append(resp.Entries, fileInfoPB(fi))
	}
	// A response over the frame limit cannot be sent; report it as an
	// error instead.
	if n := proto.Size(resp); n > wire.MaxFrameSize-4096 {
		return nil, errorf(wire.ResourceExhausted, "directory listing is %d bytes, over the %d byte message limit", n, wire.MaxFrameSize)
	}
	return resp, nil
}

func fileInfoPB(fi fs.FileInfo) *agentpb.FileInfo {
	return &agentpb.FileInfo{
		Name:      fi.Name(),
		Size:      fi.Size(),
		Mode:      uint32(fi.Mode()),
		IsDir:     fi.IsDir(),
		ModTimeNs: fi.ModTime().UnixNano(),
	}
}
