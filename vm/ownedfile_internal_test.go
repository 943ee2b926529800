package vm

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// listenAt leaves a unix socket file at path (as a VMM that was killed
// would) and returns its identity.
func listenAt(t *testing.T, path string) *fileIdentity {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return identity(fi)
}

// TestOwnedFileEarlierBoot checks that a socket this Machine's earlier boot
// left behind is replaced, and any other file at the path is refused.
func TestOwnedFileEarlierBoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.sock")
	f := &ownedFile{path: path, what: "Vsock.Path"}
	f.left = listenAt(t, path)
	if err := f.claim(); err != nil {
		t.Fatalf("claim over our earlier boot's socket: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("our earlier socket is still there (err=%v)", err)
	}
	f.release() // nothing appeared: nothing to do

	listenAt(t, path) // someone else's socket, same path
	f.left = &fileIdentity{dev: 1, ino: 1}
	if err := f.claim(); !errors.Is(err, ErrPathInUse) {
		t.Errorf("claim over another socket = %v, want ErrPathInUse", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the other socket was removed: %v", err)
	}
}
