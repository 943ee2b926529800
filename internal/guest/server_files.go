package guest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// ReadFile streams a file: the client sends the path, then credits; the
// agent sends info, data chunks (at most the granted credits) and eof.
func (s *service) ReadFile(ctx context.Context, stream readFileStream) error {
	if s.srv.inertOnly {
		return errorf(wire.PermissionDenied, "read disabled")
	}
	in, err := stream.Recv()
	if err != nil {
		return err
	}
	path := in.GetPath()
	if path == "" {
		return errorf(wire.InvalidArgument, "read: the first message must be a non-empty path")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errorf(wire.FailedPrecondition, "is a directory")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	credits := wire.NewWindow(wire.OutputWindow)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for {
			in, err := stream.Recv()
			if err != nil {
				cancel() // finished, abandoned or disconnected: stop sending
				return
			}
			credits.Grant(int(in.GetCredit()))
		}
	}()

	if err := stream.Send(&agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Info{Info: fileInfoPB(fi)}}); err != nil {
		return err
	}
	buf := make([]byte, wire.ChunkSize)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := credits.Take(ctx); err != nil {
				return err
			}
			if err := stream.Send(&agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Data{Data: buf[:n]}}); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if err := stream.Send(&agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Eof{Eof: true}}); err != nil {
		return err
	}
	select {
	case <-clientDone:
	case <-time.After(finalWait):
	}
	return nil
}

// WriteFile receives a file: header, data chunks (at most the granted
// credits) and close from the client; credits and finally the number of
// bytes written from the agent. The file gets exactly the requested
// permission bits (no umask). A stream that ends without close leaves the
// partial file and reports Aborted.
func (s *service) WriteFile(ctx context.Context, stream writeFileStream) (retErr error) {
	if s.srv.inertOnly {
		return errorf(wire.PermissionDenied, "write disabled")
	}
	in, err := stream.Recv()
	if err != nil {
		return err
	}
	h := in.GetHeader()
	if h == nil || h.Path == "" {
		return errorf(wire.InvalidArgument, "write: the first message must be a header with a non-empty path")
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm
	if h.CreateParents {
		if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(h.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()

	var written int64
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errorf(wire.Aborted, "write: stream ended before close")
		}
		if err != nil {
			return err
		}
		switch m := in.Msg.(type) {
		case *agentpb.WriteFileInput_Data:
			n, err := f.Write(m.Data)
			written += int64(n)
			if err != nil {
				return err
			}
			if err := stream.Send(&agentpb.WriteFileOutput{Msg: &agentpb.WriteFileOutput_Credit{Credit: 1}}); err != nil {
				return err
			}
		case *agentpb.WriteFileInput_Close:
			if err := f.Chmod(perm); err != nil {
				return err
			}
			err := f.Close()
			f = nil
			if err != nil {
				return err
			}
			if err := stream.Send(&agentpb.WriteFileOutput{Msg: &agentpb.WriteFileOutput_Written{Written: written}}); err != nil {
				return err
			}
			// Wait for the client to close its side (bounded by the
			// connection's lifetime).
			for {
				if _, err := stream.Recv(); err != nil {
					return nil
				}
			}
		default:
			return errorf(wire.InvalidArgument, "write: unexpected message")
		}
	}
}
