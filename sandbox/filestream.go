package sandbox

import (
	"context"
	"io"
	"io/fs"

	"github.com/pettyvm/petty/agent"
)

// CopyFrom streams the file at path in the guest to w, holding only a
// small window in memory, and returns the bytes copied.
func (s *Sandbox) CopyFrom(ctx context.Context, path string, w io.Writer) (int64, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	return s.client.CopyFrom(ctx, path, w)
}

// CopyTo streams r into the file at path in the guest (created or
// truncated, with permission bits perm, missing parents created) and
// returns the bytes written.
func (s *Sandbox) CopyTo(ctx context.Context, path string, r io.Reader, perm fs.FileMode) (int64, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	return s.client.CopyTo(ctx, path, r, perm, agent.CreateParents())
}
