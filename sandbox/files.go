package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"

	"github.com/pettyvm/petty/agent"
)

// FileInfo describes a file in the guest.
type FileInfo = agent.FileInfo

// ReadFile returns the file at path, failing with ErrTooLarge (wrapped in
// an *fs.PathError) when it is over max bytes (max <= 0: the agent
// client's limit).
func (s *Sandbox) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return s.client.ReadFile(ctx, path)
	}
	fi, err := s.client.Stat(ctx, path)
	if err != nil {
		return nil, err
	}
	if fi.Size > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, fi.Size, max)}
	}
	w := &limitWriter{max: max}
	if _, err := s.client.CopyFrom(ctx, path, w); err != nil {
		return nil, err
	}
	if w.over {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)}
	}
	return w.buf.Bytes(), nil
}

// limitWriter keeps up to max bytes and notes when more came.
type limitWriter struct {
	buf  bytes.Buffer
	max  int64
	over bool
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len()+len(p)) > w.max {
		w.over = true
		return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, w.max)
	}
	return w.buf.Write(p)
}

// WriteFile writes data to path with permission bits perm, creating the
// missing parent directories.
func (s *Sandbox) WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode) error {
	if err := s.alive(); err != nil {
		return err
	}
	return s.client.WriteFile(ctx, path, data, perm, agent.CreateParents())
}

// ListDir lists the directory at path, sorted by name.
func (s *Sandbox) ListDir(ctx context.Context, path string) ([]FileInfo, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	return s.client.ListDir(ctx, path)
}

// Stat describes the file at path, following symlinks.
func (s *Sandbox) Stat(ctx context.Context, path string) (FileInfo, error) {
	if err := s.alive(); err != nil {
		return FileInfo{}, err
	}
	return s.client.Stat(ctx, path)
}

// Move renames src to dst. The agent has no rename: it runs mv in the
// guest, with the paths as arguments (never through a shell).
func (s *Sandbox) Move(ctx context.Context, src, dst string) error {
	return s.fileCommand(ctx, "move", src, "mv", "-f", "--", src, dst)
}

// Remove removes path; with recursive, a directory and its contents. It
// runs rm in the guest with the path as an argument (never through a
// shell).
func (s *Sandbox) Remove(ctx context.Context, path string, recursive bool) error {
	if recursive {
		return s.fileCommand(ctx, "remove", path, "rm", "-rf", "--", path)
	}
	if _, err := s.Stat(ctx, path); err != nil {
		return err
	}
	return s.fileCommand(ctx, "remove", path, "rm", "-f", "--", path)
}

// fileCommand runs a file utility and turns a failure into an
// *fs.PathError carrying its message.
func (s *Sandbox) fileCommand(ctx context.Context, op, path string, args ...string) error {
	res, err := s.Run(ctx, RunOptions{Args: args, MaxOutput: 4096})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%s: %s", args[0], bytes.TrimSpace(res.Stderr))}
	}
	return nil
}
