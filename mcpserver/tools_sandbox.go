package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// CreateInput are create_sandbox's arguments.
type CreateInput struct {
	MemoryMiB int               `json:"memory_mib,omitempty" jsonschema:"guest memory in MiB (at least 128)"`
	VCPUCount int               `json:"vcpu_count,omitempty" jsonschema:"number of vCPUs"`
	Image     string            `json:"image,omitempty" jsonschema:"image name (default: petty's default image)"`
	TimeoutS  int               `json:"timeout_s,omitempty" jsonschema:"lifetime in seconds (default 600); the sandbox is destroyed when it expires"`
	Env       map[string]string `json:"env,omitempty" jsonschema:"environment variables of every command"`
	Labels    map[string]string `json:"labels,omitempty" jsonschema:"labels, for your own bookkeeping"`
}

// SandboxInfo describes a sandbox.
type SandboxInfo struct {
	SandboxID string            `json:"sandbox_id"`
	State     string            `json:"state"`
	CreatedAt string            `json:"created_at" jsonschema:"RFC 3339"`
	ExpiresAt string            `json:"expires_at" jsonschema:"RFC 3339"`
	Image     string            `json:"image"`
	MemoryMiB int               `json:"memory_mib"`
	VCPUCount int               `json:"vcpu_count"`
	Labels    map[string]string `json:"labels,omitempty"`
}

func info(sb *sandbox.Sandbox) SandboxInfo {
	i := sb.Info()
	img := i.Image
	if img == "" {
		img = sandbox.DefaultImageName
	}
	return SandboxInfo{SandboxID: i.ID, State: i.State, CreatedAt: i.CreatedAt.UTC().Format(time.RFC3339),
		ExpiresAt: i.ExpiresAt.UTC().Format(time.RFC3339), Image: img, MemoryMiB: i.MemoryMiB, VCPUCount: i.VCPUs, Labels: i.Labels}
}

// IDInput is the argument of the tools that take only a sandbox.
type IDInput struct {
	SandboxID string `json:"sandbox_id"`
}

// SuccessOutput is {success}.
type SuccessOutput struct {
	Success bool `json:"success"`
}

// ListOutput is list_sandboxes's result.
type ListOutput struct {
	Sandboxes []SandboxInfo `json:"sandboxes"`
}

// ListInput is list_sandboxes's (optional) filter.
type ListInput struct {
	Labels map[string]string `json:"labels,omitempty" jsonschema:"only sandboxes with all these labels"`
}

// ExtendInput are extend_timeout's arguments.
type ExtendInput struct {
	SandboxID      string `json:"sandbox_id"`
	TimeoutS       int    `json:"timeout_s,omitempty" jsonschema:"new lifetime in seconds from now"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"alias of timeout_s"`
}

// ExtendOutput is extend_timeout's result.
type ExtendOutput struct {
	Success   bool   `json:"success"`
	ExpiresAt string `json:"expires_at" jsonschema:"RFC 3339"`
}

func (s *Server) createSandbox(ctx context.Context, req *mcp.CallToolRequest, in CreateInput) (*mcp.CallToolResult, SandboxInfo, error) {
	if in.TimeoutS < 0 {
		return nil, SandboxInfo{}, fmt.Errorf("timeout_s must be positive")
	}
	env := make([]string, 0, len(in.Env))
	for k, v := range in.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	p := newProgress(req)
	sb, err := s.mgr.Create(ctx, sandbox.Options{
		Image: in.Image, Timeout: time.Duration(in.TimeoutS) * time.Second, Labels: in.Labels,
		MemoryMiB: in.MemoryMiB, VCPUs: in.VCPUCount, Env: env,
		Progress: func(step string) { p.send(ctx, step) },
	})
	if err != nil {
		return nil, SandboxInfo{}, err
	}
	if req != nil {
		s.own(req.Session, sb.ID())
	}
	return nil, info(sb), nil
}

func (s *Server) destroySandbox(ctx context.Context, _ *mcp.CallToolRequest, in IDInput) (*mcp.CallToolResult, SuccessOutput, error) {
	if _, err := s.sandbox(in.SandboxID); err != nil {
		return nil, SuccessOutput{}, err
	}
	if err := s.mgr.Destroy(context.WithoutCancel(ctx), in.SandboxID); err != nil {
		return nil, SuccessOutput{}, err
	}
	s.disown(in.SandboxID)
	return nil, SuccessOutput{Success: true}, nil
}

func (s *Server) listSandboxes(_ context.Context, _ *mcp.CallToolRequest, in ListInput) (*mcp.CallToolResult, ListOutput, error) {
	out := ListOutput{Sandboxes: []SandboxInfo{}}
	for _, sb := range s.mgr.List(in.Labels) {
		out.Sandboxes = append(out.Sandboxes, info(sb))
	}
	return nil, out, nil
}

func (s *Server) extendTimeout(_ context.Context, _ *mcp.CallToolRequest, in ExtendInput) (*mcp.CallToolResult, ExtendOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ExtendOutput{}, err
	}
	secs := in.TimeoutS
	if secs == 0 {
		secs = in.TimeoutSeconds
	}
	if secs <= 0 {
		return nil, ExtendOutput{}, fmt.Errorf("timeout_s must be a positive number of seconds")
	}
	if err := sb.SetTimeout(time.Duration(secs) * time.Second); err != nil {
		return nil, ExtendOutput{}, err
	}
	return nil, ExtendOutput{Success: true, ExpiresAt: info(sb).ExpiresAt}, nil
}
