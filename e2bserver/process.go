package e2bserver

import (
	"github.com/pettyvm/petty/e2b/envdpb/process/processconnect"
)

// processService is process.Process over a sandbox's processes.
type processService struct {
	processconnect.UnimplementedProcessHandler
	s *Server
}

func newProcessService(s *Server) *processService { return &processService{s: s} }
