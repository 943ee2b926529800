package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// FileInfo describes a file in the guest.
type FileInfo struct {
	Name    string      // base name
	Size    int64       // length in bytes
	Mode    fs.FileMode // type and permission bits
	IsDir   bool        // Mode.IsDir(), for convenience
	ModTime time.Time   // modification time
}

func fileInfoFromPB(fi *agentpb.FileInfo) FileInfo {
	if fi == nil {
		return FileInfo{}
	}
	return FileInfo{
		Name:    fi.Name,
		Size:    fi.Size,
		Mode:    fs.FileMode(fi.Mode),
		IsDir:   fi.IsDir,
		ModTime: time.Unix(0, fi.ModTimeNs),
	}
}

// WriteOption changes how WriteFile and CopyTo create a file.
type WriteOption func(*agentpb.WriteFileHeader)

// CreateParents makes WriteFile and CopyTo create missing parent
// directories (mode 0755).
func CreateParents() WriteOption {
	return func(h *agentpb.WriteFileHeader) { h.CreateParents = true }
}

// Stat describes the file at path in the guest, following symlinks.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	var resp agentpb.StatResponse
	if err := c.w.call(ctx, wire.MethodStat, &agentpb.StatRequest{Path: path}, &resp); err != nil {
		return FileInfo{}, pathError("stat", path, err)
	}
	return fileInfoFromPB(resp.Info), nil
}

// ListDir lists the directory at path in the guest, sorted by name. Symlinks
// are described, not followed.
func (c *Client) ListDir(ctx context.Context, path string) ([]FileInfo, error) {
	var resp agentpb.ListDirResponse
	if err := c.w.call(ctx, wire.MethodListDir, &agentpb.ListDirRequest{Path: path}, &resp); err != nil {
		return nil, pathError("readdir", path, err)
	}
	out := make([]FileInfo, len(resp.Entries))
	for i, e := range resp.Entries {
		out[i] = fileInfoFromPB(e)
	}
	return out, nil
}

// ReadFile returns the contents of the file at path in the guest. It
// collects at most the Client's file limit (DefaultMaxReadFile unless
// WithMaxReadFile changed it): a larger file fails with an *fs.PathError
// wrapping ErrTooLarge. Use CopyFrom to stream larger files.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var buf bytes.Buffer
	lw := &limitWriter{w: &buf, left: c.lim.maxReadFile}
	if _, err := c.CopyFrom(ctx, path, lw); err != nil {
		if errors.Is(err, errLimit) {
			err = &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.lim.maxReadFile)}
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// errLimit is limitWriter's error.
var errLimit = errors.New("limit reached")

// limitWriter passes at most left bytes on to w, then fails.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errLimit
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// CopyFrom streams the file at path in the guest to w and returns the number
// of bytes copied. It holds at most a small window of chunks in memory; an
// agent that sends more chunks than the host granted credits for overflows
// the call's buffer and fails it with ErrProtocol. When ctx ends it returns
// ctx.Err() at once.
func (c *Client) CopyFrom(ctx context.Context, path string, w io.Writer) (int64, error) {
	stream, err := openStream[*agentpb.ReadFileInput, agentpb.ReadFileOutput](ctx, c.w, wire.MethodReadFile)
	if err != nil {
		return 0, pathError("read", path, err)
	}
	completed := false
	defer func() { stream.release(completed) }()
	if err := stream.Send(&agentpb.ReadFileInput{Msg: &agentpb.ReadFileInput_Path{Path: path}}); err != nil {
		return 0, pathError("read", path, err)
	}
	var n int64
	// Data is acknowledged once consumed (see Exec).
	ack := wire.NewAcker(wire.OutputWindow / 4)
	for {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		out, err := stream.Recv()
		if err != nil {
			return n, recvError(ctx, "read", path, err)
		}
		switch m := out.Msg.(type) {
		case *agentpb.ReadFileOutput_Data:
			k, werr := w.Write(m.Data)
			n += int64(k)
			if werr != nil {
				return n, werr
			}
			if g := ack.Consumed(); g > 0 {
				if err := stream.Send(&agentpb.ReadFileInput{Msg: &agentpb.ReadFileInput_Credit{Credit: uint32(g)}}); err != nil {
					return n, pathError("read", path, err)
				}
			}
		case *agentpb.ReadFileOutput_Eof:
			completed = true
			return n, nil
		}
	}
}

// WriteFile writes data to the file at path in the guest, creating or
// truncating it; the file ends up with exactly the permission bits of perm.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte, perm fs.FileMode, opts ...WriteOption) error {
	_, err := c.CopyTo(ctx, path, bytes.NewReader(data), perm, opts...)
	return err
}

// CopyTo streams r into the file at path in the guest, creating or
// truncating it with exactly the permission bits of perm, and returns the
// number of bytes written. If it fails midway the partial file remains.
func (c *Client) CopyTo(ctx context.Context, path string, r io.Reader, perm fs.FileMode, opts ...WriteOption) (int64, error) {
	stream, err := openStream[*agentpb.WriteFileInput, agentpb.WriteFileOutput](ctx, c.w, wire.MethodWriteFile)
	if err != nil {
		return 0, pathError("write", path, err)
	}
	completed := false
	defer func() { stream.release(completed) }()
	h := &agentpb.WriteFileHeader{Path: path, Mode: uint32(perm.Perm())}
	for _, o := range opts {
		o(h)
	}
	if err := stream.Send(&agentpb.WriteFileInput{Msg: &agentpb.WriteFileInput_Header{Header: h}}); err != nil {
		return 0, pathError("write", path, err)
	}
	credits := wire.InputWindow
	// recv handles one agent message; it returns the final count when the
	// agent reports it.
	recv := func() (written int64, final bool, err error) {
		out, err := stream.Recv()
		if err != nil {
			return 0, false, recvError(ctx, "write", path, err)
		}
		switch m := out.Msg.(type) {
		case *agentpb.WriteFileOutput_Credit:
			// Never more than the window: an agent cannot make the host
			// overrun its own buffers by over-granting.
			credits = min(credits+int(m.Credit), wire.InputWindow)
		case *agentpb.WriteFileOutput_Written:
			return m.Written, true, nil
		}
		return 0, false, nil
	}
	buf := make([]byte, wire.ChunkSize)
	for {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			for credits == 0 {
				if _, final, err := recv(); err != nil {
					return 0, err
				} else if final {
					return 0, pathError("write", path, errors.New("agent ended the write early"))
				}
			}
			credits--
			if err := stream.Send(&agentpb.WriteFileInput{Msg: &agentpb.WriteFileInput_Data{Data: buf[:n]}}); err != nil {
				return 0, pathError("write", path, err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	if err := stream.Send(&agentpb.WriteFileInput{Msg: &agentpb.WriteFileInput_Close{Close: true}}); err != nil {
		return 0, pathError("write", path, err)
	}
	for {
		written, final, err := recv()
		if err != nil {
			return 0, err
		}
		if final {
			completed = true
			return written, nil
		}
	}
}

// recvError is the error of a file stream's failed Recv: ctx's error once
// ctx ended, else err for op on path, an early end of the stream reported as
// io.ErrUnexpectedEOF.
func recvError(ctx context.Context, op, path string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("stream ended early: %w", io.ErrUnexpectedEOF)
	}
	return pathError(op, path, err)
}
