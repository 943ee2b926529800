package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ulikunitz/xz/lzma"
)

// XZ filter IDs (xz file format 1.1.0, section 5.3).
const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// errNotBCJ means the XZ stream is not the x86 BCJ + LZMA2 kind this file
// decodes; the caller uses the general decoder instead.
var errNotBCJ = errors.New("not an x86 BCJ + LZMA2 xz stream")

// decodeXZBCJ decodes the XZ streams arch/x86 kernels are compressed into
// (scripts/xz_wrap.sh: one block, filters x86 BCJ then LZMA2), which
// github.com/ulikunitz/xz rejects because it has no BCJ filter. It decodes
// the first block's LZMA2 data and undoes the x86 BCJ filter; the caller
// checks the size against the one the kernel appends. Integrity checks are
// not verified.
func decodeXZBCJ(stream []byte, sizeHint int) ([]byte, error) {
	const streamHeaderLen = 12
	if len(stream) < streamHeaderLen+8 {
		return nil, errNotBCJ
	}
	hdr := stream[streamHeaderLen:]
	hdrLen := (int(hdr[0]) + 1) * 4
	if hdr[0] == 0 || hdrLen > len(hdr) {
		return nil, errNotBCJ
	}
	flags := hdr[1]
	if flags&0x03 != 1 { // exactly two filters
		return nil, errNotBCJ
	}
	p := 2
	varint := func() (uint64, bool) {
		v, n := binary.Uvarint(hdr[p:hdrLen])
		if n <= 0 {
			return 0, false
		}
		p += n
		return v, true
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // sizes
		if present {
			if _, ok := varint(); !ok {
				return nil, errNotBCJ
			}
		}
	}
	type filter struct {
		id    uint64
		props []byte
	}
	var filters [2]filter
	for i := range filters {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || n > uint64(hdrLen-p) {
			return nil, errNotBCJ
		}
		filters[i] = filter{id: id, props: hdr[p : p+int(n)]}
		p += int(n)
	}
	if filters[0].id != xzFilterX86 || len(filters[0].props) != 0 ||
		filters[1].id != xzFilterLZMA2 || len(filters[1].props) != 1 {
		return nil, errNotBCJ // a BCJ start offset is not supported either
	}
	dictBits := filters[1].props[0]
	if dictBits > 40 {
		return nil, fmt.Errorf("%w: xz: bad LZMA2 dictionary size %d", ErrNotVmlinux, dictBits)
	}
	dictCap := 0xffffffff
	if dictBits < 40 {
		dictCap = (2 | int(dictBits&1)) << (dictBits/2 + 11)
	}
	dictCap = max(lzma.MinDictCap, min(dictCap, maxVmlinuxSize))
	r, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(bytes.NewReader(hdr[hdrLen:]))
	if err != nil {
		return nil, fmt.Errorf("%w: xz: %v", ErrNotVmlinux, err)
	}
	out, err := readLimited(r, "xz")
	if err != nil {
		return nil, err
	}
	if sizeHint >= 0 && len(out) != sizeHint {
		return nil, fmt.Errorf("%w: xz: decoded %d bytes, want %d (multi-block streams are not supported)", ErrNotVmlinux, len(out), sizeHint)
	}
	bcjX86Decode(out)
	return out, nil
}

// bcjX86Decode undoes the XZ x86 branch/call/jump filter in place, for a
// buffer that starts at stream offset 0 (xz-embedded's bcj_x86).
func bcjX86Decode(buf []byte) {
	maskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msb := func(b byte) bool { return b == 0x00 || b == 0xff }
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskBitNum[prevMask])]
				if !maskAllowed[prevMask] || msb(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !msb(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - uint32(i+5)
			if prevMask == 0 {
				break
			}
			j := maskBitNum[prevMask] * 8
			if !msb(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
