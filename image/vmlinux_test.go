package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestExtractVmlinuxMethods(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<12)
	want := fakeELF(body)
	raw := append(append([]byte{}, want...), "relocation table"...)
	for _, method := range []string{"lz4", "gzip", "xz", "zstd"} {
		t.Run(method, func(t *testing.T) {
			got, err := ExtractVmlinux(fakeBzImage(compressKernel(t, method, raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, want the %d-byte ELF without the trailing relocations", len(got), len(want))
			}
		})
	}
}

func TestExtractVmlinuxErrors(t *testing.T) {
	elfData := fakeELF([]byte("x"))
	truncated := fakeBzImage(compressKernel(t, "lz4", elfData))
	truncated = truncated[:offPayloadLength+4]
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotVmlinux},
		{"no HdrS", make([]byte, 4096), ErrNotVmlinux},
		{"payload past the end", truncated, ErrNotVmlinux},
		{"bzip2", fakeBzImage(compressKernel(t, "bzip2", elfData)), ErrUnsupportedCompression},
		{"not ELF", fakeBzImage(compressKernel(t, "gzip", []byte("MZ not an elf file at all"))), ErrNotVmlinux},
		{"wrong size", func() []byte {
			p := compressKernel(t, "zstd", elfData)
			p[len(p)-1] ^= 1
			return fakeBzImage(p)
		}(), ErrNotVmlinux},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ExtractVmlinux(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestExtractVmlinuxHostKernel extracts the installed Debian cloud kernel.
func TestExtractVmlinuxHostKernel(t *testing.T) {
	path := hostKernel(t)
	bz, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ExtractVmlinux(bz)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(v))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("machine %v type %v, want EM_X86_64 ET_EXEC", f.Machine, f.Type)
	}
	// QEMU's -kernel and Firecracker boot an ELF vmlinux via its PVH entry
	// note (XEN_ELFNOTE_PHYS32_ENTRY) or its 64-bit entry point.
	hasNotes := false
	for _, p := range f.Progs {
		hasNotes = hasNotes || p.Type == elf.PT_NOTE
	}
	if !hasNotes {
		t.Error("no PT_NOTE segment (PVH entry note)")
	}
	if rel := kernelRelease(path, bz); rel == "" {
		t.Error("no kernel release")
	}
	t.Logf("%s: %d-byte bzImage -> %d-byte vmlinux (release %s)", path, len(bz), len(v), kernelRelease(path, bz))
}

func TestKernelReleaseFromHeader(t *testing.T) {
	bz := fakeBzImage(compressKernel(t, "gzip", fakeELF(nil)))
	if got := kernelRelease("/boot/whatever", bz); got != fakeRelease {
		t.Errorf("release = %q, want %q", got, fakeRelease)
	}
	if got := kernelRelease("/boot/vmlinuz-1.2.3-x", []byte("junk")); got != "1.2.3-x" {
		t.Errorf("release from name = %q", got)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"vmlinuz-6.1.0-9-cloud-amd64", "vmlinuz-6.1.0-56-cloud-amd64", -1},
		{"vmlinuz-6.10.0-1-cloud-amd64", "vmlinuz-6.9.0-30-cloud-amd64", 1},
		{"vmlinuz-6.1.0-56-cloud-amd64", "vmlinuz-6.1.0-56-cloud-amd64", 0},
		{"vmlinuz-6.1.0-056", "vmlinuz-6.1.0-56", 0},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestExtractVmlinuxXZBCJ compresses like scripts/xz_wrap.sh does for x86
// (x86 BCJ filter, then LZMA2) with the xz tool and extracts it again.
func TestExtractVmlinuxXZBCJ(t *testing.T) {
	xzPath, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("xz not found: apt-get install xz-utils")
	}
	// x86 machine code exercises the filter: calls and jumps abound.
	code, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	want := fakeELF(code[:min(len(code), 4<<20)])
	raw := append(append([]byte{}, want...), "relocs"...)
	cmd := exec.Command(xzPath, "--format=xz", "--check=crc32", "--x86", "--lzma2=preset=1,dict=1MiB", "-c")
	cmd.Stdin = bytes.NewReader(raw)
	compressed, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	payload := binary.LittleEndian.AppendUint32(compressed, uint32(len(raw)))
	got, err := ExtractVmlinux(fakeBzImage(payload))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("x86 BCJ xz payload did not round-trip")
	}
}
