package guest

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRemoveOnDevice checks the initramfs clean-up before switching root:
// everything on the device goes, regular files' sizes are counted.
func TestRemoveOnDevice(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a/b/c", "lib/modules"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, size := range map[string]int{"init": 100, "a/b/c/f": 10, "lib/modules/m.ko": 1} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("init", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if freed := removeOnDevice(dir, fi.Sys().(*syscall.Stat_t).Dev); freed != 111 {
		t.Errorf("freed %d bytes, want 111", freed)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left: %v", ents)
	}
	// Another device's files are never touched.
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if freed := removeOnDevice(dir, ^uint64(0)); freed != 0 {
		t.Errorf("freed %d on another device", freed)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Errorf("removed a file of another device: %v", err)
	}
}

func TestAddHostsEntry(t *testing.T) {
	tests := []struct{ name, before, want string }{
		{"debian default", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\tbox\n"},
		{"no final newline", "127.0.0.1 localhost", "127.0.0.1 localhost\n127.0.1.1\tbox\n"},
		{"already there", "127.0.1.1 box.example box\n", "127.0.1.1 box.example box\n"},
		{"only in a comment", "# 1.2.3.4 box\n", "# 1.2.3.4 box\n127.0.1.1\tbox\n"},
		{"missing", "", "127.0.0.1\tlocalhost\n127.0.1.1\tbox\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hosts")
			if tt.before != "" {
				if err := os.WriteFile(p, []byte(tt.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := addHostsEntry(p, "box"); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(p); string(b) != tt.want {
				t.Errorf("hosts = %q, want %q", b, tt.want)
			}
		})
	}
}

func TestLinkDevFD(t *testing.T) {
	dev := t.TempDir()
	if err := os.WriteFile(filepath.Join(dev, "stdin"), nil, 0o644); err != nil {
		t.Fatal(err) // an existing entry is left alone
	}
	linkDevFD(dev, slog.New(slog.DiscardHandler))
	linkDevFD(dev, slog.New(slog.DiscardHandler)) // idempotent
	for name, want := range map[string]string{"fd": "/proc/self/fd", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "stdin": ""} {
		got, _ := os.Readlink(filepath.Join(dev, name))
		if got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
}

func TestWriteResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := writeResolvConf(p, "10.0.0.2,bogus,2001:db8::1"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	want := "# petty: the host's name servers (petty.dns=)\nnameserver 10.0.0.2\nnameserver 2001:db8::1\n"
	if err != nil || string(b) != want {
		t.Errorf("resolv.conf = %q (%v), want %q", b, err, want)
	}
	// The image's own file stays, a symbolic link too.
	own := filepath.Join(dir, "own")
	if err := os.Symlink("../run/resolv.conf", own); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(own, "10.0.0.3"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(own); err != nil || target != "../run/resolv.conf" {
		t.Errorf("the image's link became %q (%v)", target, err)
	}
	// No address: no file.
	none := filepath.Join(dir, "none")
	if err := writeResolvConf(none, "bogus"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(none); !os.IsNotExist(err) {
		t.Errorf("wrote %s without an address (%v)", none, err)
	}
}
