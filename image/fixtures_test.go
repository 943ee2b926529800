package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

const fakeRelease = "6.1.0-99-test-amd64"

// fakeELF returns a minimal ELF64 x86-64 file: a header, one PT_LOAD
// program header and body bytes.
func fakeELF(body []byte) []byte {
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Off: 120, Filesz: uint64(len(body)), Memsz: uint64(len(body)),
	})
	b.Write(body)
	return b.Bytes()
}

// compressKernel compresses p the way arch/x86/boot/compressed does:
// every method but gzip gets the uncompressed size appended.
func compressKernel(t *testing.T, method string, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch method {
	case "gzip":
		w := gzip.NewWriter(&b)
		w.Write(p)
		w.Close()
		return b.Bytes()
	case "lz4":
		// Legacy frame: magic, then (size, block) pairs of at most 8 MiB
		// input each; two blocks here to exercise the loop.
		binary.Write(&b, binary.LittleEndian, uint32(lz4LegacyMagic))
		half := len(p) / 2
		for _, chunk := range [][]byte{p[:half], p[half:]} {
			dst := make([]byte, lz4.CompressBlockBound(len(chunk)))
			n, err := lz4.CompressBlock(chunk, dst, nil)
			if err != nil || n == 0 {
				t.Fatalf("lz4: %d, %v", n, err)
			}
			binary.Write(&b, binary.LittleEndian, uint32(n))
			b.Write(dst[:n])
		}
	case "xz":
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p)
		w.Close()
	case "zstd":
		enc, _ := zstd.NewWriter(nil)
		b.Write(enc.EncodeAll(p, nil))
		enc.Close()
	case "bzip2":
		b.WriteString("BZh91AY&SY")
	default:
		t.Fatalf("unknown method %q", method)
	}
	binary.Write(&b, binary.LittleEndian, uint32(len(p)))
	return b.Bytes()
}

// fakeBzImage wraps a compressed payload in an x86 boot setup header
// (protocol 2.15, one setup sector) naming fakeRelease.
func fakeBzImage(payload []byte) []byte {
	const setupSects = 1
	pm := (setupSects + 1) * 512
	const payloadOff = 0x80
	img := make([]byte, pm+payloadOff+len(payload)+64)
	img[offSetupSects] = setupSects
	copy(img[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(img[offVersion:], 0x020f)
	ver := 0x300 // kernel_version string, offset from 0x200
	binary.LittleEndian.PutUint16(img[0x20e:], uint16(ver-0x200))
	copy(img[ver:], fakeRelease+" (test@example) #1 SMP\x00")
	binary.LittleEndian.PutUint32(img[offPayloadOffset:], payloadOff)
	binary.LittleEndian.PutUint32(img[offPayloadLength:], uint32(len(payload)))
	copy(img[pm+payloadOff:], payload)
	return img
}

// fakeHost is a synthetic kernel, modules dir and busybox for Build tests
// that need no real kernel.
type fakeHost struct {
	kernel, modules, busybox, agent string
}

func newFakeHost(t *testing.T) fakeHost {
	t.Helper()
	dir := t.TempDir()
	body := bytes.Repeat([]byte("kernel text "), 4096)
	h := fakeHost{
		kernel:  filepath.Join(dir, "vmlinuz-"+fakeRelease),
		modules: filepath.Join(dir, "modules", fakeRelease),
		busybox: filepath.Join(dir, "busybox"),
		agent:   filepath.Join(dir, "agent"),
	}
	elfPlusRelocs := append(fakeELF(body), "RELOCS"...)
	writeFile(t, h.kernel, fakeBzImage(compressKernel(t, "lz4", elfPlusRelocs)))
	writeFile(t, filepath.Join(h.modules, "modules.dep"), []byte(syntheticDep))
	writeFile(t, filepath.Join(h.modules, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"))
	db, err := parseModulesDep(bytes.NewReader([]byte(syntheticDep)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range db.paths {
		data := fakeELF([]byte("module " + name))
		if filepath.Ext(p) == ".xz" {
			var b bytes.Buffer
			w, _ := xz.NewWriter(&b)
			w.Write(data)
			w.Close()
			data = b.Bytes()
		}
		writeFile(t, filepath.Join(h.modules, p), data)
	}
	writeFile(t, h.busybox, fakeELF([]byte("busybox")))
	writeFile(t, h.agent, fakeELF([]byte("agent v1")))
	return h
}

func (h fakeHost) options(cacheDir string) Options {
	return Options{KernelPath: h.kernel, ModulesDir: h.modules, BusyboxPath: h.busybox, AgentPath: h.agent, CacheDir: cacheDir}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
