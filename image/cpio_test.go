package image

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newcEntry is one parsed cpio newc record.
type newcEntry struct {
	Name         string
	Ino, Mode    uint32
	UID, GID     uint32
	Nlink, Mtime uint32
	RMajor       uint32
	RMinor       uint32
	Data         string
}

// parseNewc is an independent newc reader for the tests.
func parseNewc(t *testing.T, b []byte) []newcEntry {
	t.Helper()
	var out []newcEntry
	off := 0
	for {
		if len(b)-off < 110 {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		namesize, filesize := int(field(11)), int(field(6))
		if field(12) != 0 {
			t.Errorf("check field = %d", field(12))
		}
		nameStart := off + 110
		name := string(b[nameStart : nameStart+namesize-1])
		if b[nameStart+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		dataStart := nameStart + namesize + pad4(110+namesize)
		if dataStart%4 != 0 {
			t.Fatalf("%s: data at %d not 4-aligned", name, dataStart)
		}
		if name == cpioTrailer {
			if rest := b[dataStart:]; len(rest) != 0 {
				t.Fatalf("%d bytes after the trailer", len(rest))
			}
			return out
		}
		out = append(out, newcEntry{
			Name: name, Ino: field(0), Mode: field(1), UID: field(2), GID: field(3),
			Nlink: field(4), Mtime: field(5), RMajor: field(9), RMinor: field(10),
			Data: string(b[dataStart : dataStart+filesize]),
		})
		off = dataStart + filesize + pad4(filesize)
	}
}

func sampleTree(t *testing.T) *tree {
	t.Helper()
	tr := newTree()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.file("sbin/agent", 0o755, []byte("agent!")))
	must(tr.file("init", 0o755, []byte("#!/bin/sh\n")))
	must(tr.symlink("bin/sh", "busybox"))
	must(tr.file("bin/busybox", 0o755, []byte("bb")))
	must(tr.charDev("dev/console", 0o600, 5, 1))
	must(tr.mkdir("tmp", 0o1777))
	must(tr.file("a-b/x", 0o644, nil)) // '-' sorts before '/'
	return tr
}

func TestWriteNewc(t *testing.T) {
	var buf bytes.Buffer
	if err := writeNewc(&buf, sampleTree(t)); err != nil {
		t.Fatal(err)
	}
	got := parseNewc(t, buf.Bytes())
	want := []newcEntry{
		{Name: "a-b", Mode: cpioModeDir | 0o755, Nlink: 2},
		{Name: "a-b/x", Mode: cpioModeFile | 0o644, Nlink: 1},
		{Name: "bin", Mode: cpioModeDir | 0o755, Nlink: 2},
		{Name: "bin/busybox", Mode: cpioModeFile | 0o755, Nlink: 1, Data: "bb"},
		{Name: "bin/sh", Mode: cpioModeSymlink | 0o777, Nlink: 1, Data: "busybox"},
		{Name: "dev", Mode: cpioModeDir | 0o755, Nlink: 2},
		{Name: "dev/console", Mode: cpioModeChar | 0o600, Nlink: 1, RMajor: 5, RMinor: 1},
		{Name: "init", Mode: cpioModeFile | 0o755, Nlink: 1, Data: "#!/bin/sh\n"},
		{Name: "sbin", Mode: cpioModeDir | 0o755, Nlink: 2},
		{Name: "sbin/agent", Mode: cpioModeFile | 0o755, Nlink: 1, Data: "agent!"},
		{Name: "tmp", Mode: cpioModeDir | 0o1777, Nlink: 2},
	}
	for i := range want {
		want[i].Ino = uint32(i + 1)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestWriteNewcDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := writeNewc(&a, sampleTree(t)); err != nil {
		t.Fatal(err)
	}
	if err := writeNewc(&b, sampleTree(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same tree differ")
	}
}

// TestWriteNewcCpioTool cross-checks the archive with GNU cpio, if present.
func TestWriteNewcCpioTool(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not found: apt-get install cpio")
	}
	var buf bytes.Buffer
	if err := writeNewc(&buf, sampleTree(t)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var names []string
	for _, l := range lines {
		f := strings.Fields(l)
		names = append(names, f[len(f)-1])
		if strings.HasPrefix(l, "l") {
			names[len(names)-1] = f[len(f)-3] + "->" + f[len(f)-1]
		}
	}
	want := []string{"a-b", "a-b/x", "bin", "bin/busybox", "bin/sh->busybox", "dev", "dev/console", "init", "sbin", "sbin/agent", "tmp"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("cpio -t (-want +got):\n%s\nraw:\n%s", diff, out)
	}
}

func TestTreeRejectsDuplicates(t *testing.T) {
	tr := newTree()
	if err := tr.file("a/b", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		add  func() error
	}{
		{"file twice", func() error { return tr.file("a/b", 0o644, nil) }},
		{"file under file", func() error { return tr.file("a/b/c", 0o644, nil) }},
		{"root", func() error { return tr.file("/", 0o644, nil) }},
	} {
		if err := tc.add(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := tr.mkdir("a", 0o755); err != nil {
		t.Errorf("mkdir of an existing dir: %v", err)
	}
}
