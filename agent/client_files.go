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
	if err := c.w.call(ctx, "Stat", &agentpb.StatRequest{Path: path}, &resp); err != nil {
		return FileInfo{}, pathError("stat", path, err)
	}
	return fileInfoFromPB(resp.Info), nil
}

// ListDir lists the directory at path in the guest, sorted by name. Symlinks
// are described, not followed.
func (c *Client) ListDir(ctx context.Context, path string) ([]FileInfo, error) {
	var resp agentpb.ListDirResponse
	if err := c.w.call(ctx, "ListDir", &agentpb.ListDirRequest{Path: path}, &resp); err != nil {
		return nil, pathError("readdir", path, err)
	}
	out := make([]FileInfo, len(resp.Entries))
	for i, e := range resp.Entries {
		out[i] = fileInfoFromPB(e)
	}
	return out, nil
}

// ReadFile returns the contents of the file at path in the guest.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := c.CopyFrom(ctx, path, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CopyFrom streams the file at path in the guest to w and returns the number
// of bytes copied. It holds at most a small window of chunks in memory.
func (c *Client) CopyFrom(ctx context.Context, path string, w io.Writer) (int64, error) {
	sctx, release := streamContext(ctx)
	defer release()
	stream, err := openStream[*agentpb.ReadFileInput, agentpb.ReadFileOutput](sctx, c.w, "ReadFile")
	if err != nil {
		return 0, pathError("read", path, err)
	}
	remoteDone := false
	defer func() { stream.closeAndDrain(remoteDone) }()
	if err := stream.Send(&agentpb.ReadFileInput{Msg: &agentpb.ReadFileInput_Path{Path: path}}); err != nil {
		return 0, pathError("read", path, err)
	}
	var n int64
	ack := acker{batch: outputWindow / 4}
	for {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		out, err := stream.Recv()
		if err != nil {
			remoteDone = true
			return n, recvError(ctx, "read", path, err)
		}
		switch m := out.Msg.(type) {
		case *agentpb.ReadFileOutput_Data:
			k, werr := w.Write(m.Data)
			n += int64(k)
			if werr != nil {
				return n, werr
			}
			if g := ack.consumed(); g > 0 {
				if err := stream.Send(&agentpb.ReadFileInput{Msg: &agentpb.ReadFileInput_Credit{Credit: uint32(g)}}); err != nil {
					return n, pathError("read", path, err)
				}
			}
		case *agentpb.ReadFileOutput_Eof:
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
	sctx, release := streamContext(ctx)
	defer release()
	stream, err := openStream[*agentpb.WriteFileInput, agentpb.WriteFileOutput](sctx, c.w, "WriteFile")
	if err != nil {
		return 0, pathError("write", path, err)
	}
	remoteDone := false
	defer func() { stream.closeAndDrain(remoteDone) }()
	h := &agentpb.WriteFileHeader{Path: path, Mode: uint32(perm.Perm())}
	for _, o := range opts {
		o(h)
	}
	if err := stream.Send(&agentpb.WriteFileInput{Msg: &agentpb.WriteFileInput_Header{Header: h}}); err != nil {
		return 0, pathError("write", path, err)
	}
	credits := inputWindow
	// recv handles one agent message; it returns the final count when the
	// agent reports it.
	recv := func() (written int64, final bool, err error) {
		out, err := stream.Recv()
		if err != nil {
			remoteDone = true
			return 0, false, recvError(ctx, "write", path, err)
		}
		switch m := out.Msg.(type) {
		case *agentpb.WriteFileOutput_Credit:
			credits += int(m.Credit)
		case *agentpb.WriteFileOutput_Written:
			return m.Written, true, nil
		}
		return 0, false, nil
	}
	buf := make([]byte, chunkSize)
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
			return written, nil
		}
	}
}

// streamContext returns the context of a file stream: it outlives ctx by
// abandonWait, so that an abandoned stream can still be drained. release
// frees it.
func streamContext(ctx context.Context) (sctx context.Context, release func()) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(abandonWait, cancel) })
	return sctx, func() {
		stop()
		cancel()
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
