package e2bserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	fspb "github.com/pettyvm/petty/e2b/envdpb/filesystem"
	"github.com/pettyvm/petty/e2b/envdpb/filesystem/filesystemconnect"
	"github.com/pettyvm/petty/sandbox"
)

// maxListEntries bounds a ListDir answer.
const maxListEntries = 100000

// fsService is filesystem.Filesystem over a sandbox's files. WatchDir and
// the watchers answer unimplemented.
type fsService struct {
	filesystemconnect.UnimplementedFilesystemHandler
	s *Server
}

var _ filesystemconnect.FilesystemHandler = (*fsService)(nil)

// rpcError maps a sandbox or file error to a Connect error.
func rpcError(err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, fs.ErrExist):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, fs.ErrPermission):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, sandbox.ErrNoProcess):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, sandbox.ErrInvalid), errors.Is(err, fs.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, sandbox.ErrLimit):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	default:
		return connect.NewError(connect.CodeInternal, err)
	}
}

// call is what each filesystem method needs: the sandbox and the user.
func call(ctx context.Context, h interface{ Header() http.Header }) (*sandbox.Sandbox, user, error) {
	u, err := basicUser(h.Header())
	if err != nil {
		return nil, user{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	return sandboxFrom(ctx), u, nil
}

// entry is the EntryInfo of fi at p.
func entry(p string, fi sandbox.FileInfo) *fspb.EntryInfo {
	t := fspb.FileType_FILE_TYPE_FILE
	switch {
	case fi.IsDir:
		t = fspb.FileType_FILE_TYPE_DIRECTORY
	case fi.Mode&fs.ModeSymlink != 0:
		t = fspb.FileType_FILE_TYPE_SYMLINK
	}
	name := fi.Name
	if name == "" || name == "." {
		name = path.Base(p)
	}
	return &fspb.EntryInfo{Name: name, Type: t, Path: p, Size: fi.Size, Mode: uint32(fi.Mode.Perm()),
		Permissions: fi.Mode.String(), ModifiedTime: timestamppb.New(fi.ModTime)}
}

// stat is the EntryInfo of p.
func stat(ctx context.Context, sb *sandbox.Sandbox, p string) (*fspb.EntryInfo, error) {
	fi, err := sb.Stat(ctx, p)
	if err != nil {
		return nil, rpcError(err)
	}
	return entry(p, fi), nil
}

// Stat implements filesystem.Filesystem.
func (f *fsService) Stat(ctx context.Context, req *connect.Request[fspb.StatRequest]) (*connect.Response[fspb.StatResponse], error) {
	sb, u, err := call(ctx, req)
	if err != nil {
		return nil, err
	}
	e, err := stat(ctx, sb, u.abs(req.Msg.GetPath()))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fspb.StatResponse{Entry: e}), nil
}

// ListDir implements filesystem.Filesystem: the entries under path down to
// depth levels (0 means 1), directories first listed then descended into;
// symlinks are not followed.
func (f *fsService) ListDir(ctx context.Context, req *connect.Request[fspb.ListDirRequest]) (*connect.Response[fspb.ListDirResponse], error) {
	sb, u, err := call(ctx, req)
	if err != nil {
		return nil, err
	}
	root := u.abs(req.Msg.GetPath())
	depth := int(req.Msg.GetDepth())
	if depth == 0 {
		depth = 1
	}
	fi, err := sb.Stat(ctx, root)
	if err != nil {
		return nil, rpcError(err)
	}
	if !fi.IsDir {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path %s is not a directory", root))
	}
	var out []*fspb.EntryInfo
	var walk func(dir string, level int) error
	walk = func(dir string, level int) error {
		ents, err := sb.ListDir(ctx, dir)
		if err != nil {
			return rpcError(err)
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name)
			out = append(out, entry(p, e))
			if len(out) > maxListEntries {
				return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("over %d entries", maxListEntries))
			}
			if e.IsDir && level < depth {
				if err := walk(p, level+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, 1); err != nil {
		return nil, err
	}
	return connect.NewResponse(&fspb.ListDirResponse{Entries: out}), nil
}

// MakeDir implements filesystem.Filesystem: already_exists when path
// exists, else the directory and its missing parents, owned by the user.
func (f *fsService) MakeDir(ctx context.Context, req *connect.Request[fspb.MakeDirRequest]) (*connect.Response[fspb.MakeDirResponse], error) {
	sb, u, err := call(ctx, req)
	if err != nil {
		return nil, err
	}
	p := u.abs(req.Msg.GetPath())
	if _, err := sb.Stat(ctx, p); err == nil {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s already exists", p))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, rpcError(err)
	}
	if err := guestCommand(ctx, sb, u, "mkdir", p, "mkdir", "-p", "--", p); err != nil {
		return nil, rpcError(err)
	}
	e, err := stat(ctx, sb, p)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fspb.MakeDirResponse{Entry: e}), nil
}

// Move implements filesystem.Filesystem.
func (f *fsService) Move(ctx context.Context, req *connect.Request[fspb.MoveRequest]) (*connect.Response[fspb.MoveResponse], error) {
	sb, u, err := call(ctx, req)
	if err != nil {
		return nil, err
	}
	src, dst := u.abs(req.Msg.GetSource()), u.abs(req.Msg.GetDestination())
	if _, err := sb.Stat(ctx, src); err != nil {
		return nil, rpcError(err)
	}
	if err := guestCommand(ctx, sb, u, "move", src, "mv", "-f", "-T", "--", src, dst); err != nil {
		return nil, rpcError(err)
	}
	e, err := stat(ctx, sb, dst)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fspb.MoveResponse{Entry: e}), nil
}

// Remove implements filesystem.Filesystem: a file, or a directory with
// its contents.
func (f *fsService) Remove(ctx context.Context, req *connect.Request[fspb.RemoveRequest]) (*connect.Response[fspb.RemoveResponse], error) {
	sb, u, err := call(ctx, req)
	if err != nil {
		return nil, err
	}
	p := u.abs(req.Msg.GetPath())
	if _, err := sb.Stat(ctx, p); err != nil {
		return nil, rpcError(err)
	}
	if err := guestCommand(ctx, sb, u, "remove", p, "rm", "-rf", "--", p); err != nil {
		return nil, rpcError(err)
	}
	return connect.NewResponse(&fspb.RemoveResponse{}), nil
}
