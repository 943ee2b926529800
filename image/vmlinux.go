package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Offsets in the x86 boot protocol's setup header
// (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1
	offHeaderMagic   = 0x202
	offVersion       = 0x206
	offPayloadOffset = 0x248
	offPayloadLength = 0x24c
	setupHeaderEnd   = 0x250
	minPayloadProto  = 0x0208 // payload_offset/length appeared in 2.08
	lz4LegacyMagic   = 0x184C2102
	lz4LegacyBlock   = 8 << 20
	maxVmlinuxSize   = 1 << 30
)

// ExtractVmlinux returns the uncompressed ELF kernel (vmlinux) embedded in an
// x86 bzImage such as /boot/vmlinuz-*. It reads the setup header's
// payload_offset and payload_length, decompresses the payload (LZ4 legacy
// frames as the kernel writes them, gzip, XZ with or without the x86 BCJ
// filter, or zstd) and trims the relocation table the kernel appends after the ELF
// file. Errors wrap ErrNotVmlinux or ErrUnsupportedCompression.
func ExtractVmlinux(bzImage []byte) ([]byte, error) {
	payload, err := bzImagePayload(bzImage)
	if err != nil {
		return nil, err
	}
	raw, err := decompressPayload(payload)
	if err != nil {
		return nil, err
	}
	return trimELF(raw)
}

// bzImagePayload returns the compressed payload of a bzImage.
func bzImagePayload(b []byte) ([]byte, error) {
	if len(b) < setupHeaderEnd || string(b[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return nil, fmt.Errorf("%w: no HdrS setup header", ErrNotVmlinux)
	}
	if v := binary.LittleEndian.Uint16(b[offVersion:]); v < minPayloadProto {
		return nil, fmt.Errorf("%w: boot protocol %#x predates payload fields", ErrNotVmlinux, v)
	}
	setupSects := int(b[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(b[offPayloadOffset:]))
	length := int(binary.LittleEndian.Uint32(b[offPayloadLength:]))
	if length == 0 || start < 0 || start > len(b) || length > len(b)-start {
		return nil, fmt.Errorf("%w: payload [%d,+%d) outside a %d-byte file", ErrNotVmlinux, start, length, len(b))
	}
	return b[start : start+length], nil
}

// decompressPayload picks the decompressor from the payload's magic. All
// methods but gzip carry the uncompressed size in the payload's last four
// bytes (the kernel's *_with_size rules).
func decompressPayload(p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrNotVmlinux, err)
		}
		zr.Multistream(false)
		return readLimited(zr, "gzip")
	}
	if len(p) < 8 {
		return nil, fmt.Errorf("%w: payload of %d bytes", ErrNotVmlinux, len(p))
	}
	body, size := p[:len(p)-4], int(binary.LittleEndian.Uint32(p[len(p)-4:]))
	if size > maxVmlinuxSize {
		return nil, fmt.Errorf("%w: implausible uncompressed size %d", ErrNotVmlinux, size)
	}
	var out []byte
	var err error
	switch {
	case binary.LittleEndian.Uint32(body) == lz4LegacyMagic:
		out, err = decodeLZ4Legacy(body, size)
	case bytes.HasPrefix(body, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		out, err = decodeXZBCJ(body, size)
		if errors.Is(err, errNotBCJ) {
			var xr *xz.Reader
			if xr, err = xz.NewReader(bytes.NewReader(body)); err == nil {
				out, err = readLimited(xr, "xz")
			} else {
				err = fmt.Errorf("%w: xz: %v", ErrUnsupportedCompression, err)
			}
		}
	case bytes.HasPrefix(body, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderMaxMemory(maxVmlinuxSize)); err == nil {
			out, err = readLimited(zr, "zstd")
			zr.Close()
		}
	default:
		return nil, fmt.Errorf("%w: payload magic % x (bzip2, lzma and lzo are not supported)", ErrUnsupportedCompression, body[:4])
	}
	if err != nil {
		return nil, err
	}
	if len(out) != size {
		return nil, fmt.Errorf("%w: decompressed %d bytes, header says %d", ErrNotVmlinux, len(out), size)
	}
	return out, nil
}

func readLimited(r io.Reader, method string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxVmlinuxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotVmlinux, method, err)
	}
	if len(out) > maxVmlinuxSize {
		return nil, fmt.Errorf("%w: %s: output exceeds %d bytes", ErrNotVmlinux, method, maxVmlinuxSize)
	}
	return out, nil
}

// decodeLZ4Legacy decodes the LZ4 legacy frame format: a magic number, then
// blocks of (little-endian uint32 compressed size, compressed data), each
// decompressing to at most 8 MiB. The kernel's decompressor also accepts
// the magic number again between blocks (concatenated frames).
func decodeLZ4Legacy(src []byte, sizeHint int) ([]byte, error) {
	out := make([]byte, 0, sizeHint)
	block := make([]byte, lz4LegacyBlock)
	for pos := 4; pos < len(src); {
		if len(src)-pos < 4 {
			return nil, fmt.Errorf("%w: lz4: truncated block header at %d", ErrNotVmlinux, pos)
		}
		n := int(binary.LittleEndian.Uint32(src[pos:]))
		pos += 4
		if n == lz4LegacyMagic {
			continue
		}
		if n > len(src)-pos {
			return nil, fmt.Errorf("%w: lz4: block of %d bytes at %d overruns the payload", ErrNotVmlinux, n, pos)
		}
		m, err := lz4.UncompressBlock(src[pos:pos+n], block)
		if err != nil {
			return nil, fmt.Errorf("%w: lz4: block at %d: %v", ErrNotVmlinux, pos, err)
		}
		if len(out)+m > maxVmlinuxSize {
			return nil, fmt.Errorf("%w: lz4: output exceeds %d bytes", ErrNotVmlinux, maxVmlinuxSize)
		}
		out = append(out, block[:m]...)
		pos += n
	}
	return out, nil
}

// trimELF checks that b is a 64-bit x86 ELF file and drops whatever follows
// its last section, segment or header table (the relocation table the
// kernel appends for KASLR, which no VMM reads).
func trimELF(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte(elf.ELFMAG)) {
		return nil, fmt.Errorf("%w: payload does not start with \\x7fELF", ErrNotVmlinux)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotVmlinux, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%w: %v %v kernel, want ELFCLASS64 EM_X86_64", ErrNotVmlinux, f.Class, f.Machine)
	}
	end := uint64(64) // ELF64 header
	grow := func(v uint64) {
		if v > end {
			end = v
		}
	}
	for _, p := range f.Progs {
		grow(p.Off + p.Filesz)
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS {
			grow(s.Offset + s.FileSize)
		}
	}
	var eh elf.Header64
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &eh); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotVmlinux, err)
	}
	grow(eh.Phoff + uint64(eh.Phnum)*uint64(eh.Phentsize))
	grow(eh.Shoff + uint64(eh.Shnum)*uint64(eh.Shentsize))
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("%w: ELF extends to %d past the %d decompressed bytes", ErrNotVmlinux, end, len(b))
	}
	return b[:end], nil
}
