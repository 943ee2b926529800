package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signModule appends a signature trailer of sigLen bytes as the kernel's
// sign-file does; claim is the sig_len it records.
func signModule(elf []byte, sigLen, claim int) []byte {
	out := bytes.Clone(elf)
	out = append(out, bytes.Repeat([]byte{0xA5}, sigLen)...)
	info := make([]byte, moduleSigInfoLen)
	info[2] = 2 // PKEY_ID_PKCS7
	binary.BigEndian.PutUint32(info[8:], uint32(claim))
	out = append(out, info...)
	return append(out, moduleSigMarker...)
}

func TestStripModuleSignature(t *testing.T) {
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{1}, 100)...)
	tests := []struct {
		name    string
		data    []byte
		want    []byte
		wantErr error
	}{
		{name: "unsigned", data: elf, want: elf},
		{name: "signed", data: signModule(elf, 512, 512), want: elf},
		{name: "empty signature", data: signModule(elf, 0, 0), want: elf},
		{name: "sig_len past the start", data: signModule(elf, 16, 1<<20), wantErr: ErrModuleSignature},
		{name: "marker only", data: []byte(moduleSigMarker), wantErr: ErrModuleSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stripModuleSignature("a.ko", tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, tt.want) {
				t.Errorf("got %d bytes, want the %d-byte ELF", len(got), len(tt.want))
			}
		})
	}
}

// TestStripModuleSignatureHostModules strips the host kernel's own signed
// modules (Debian signs them): what is left is the ELF the kernel signed,
// which must end where the signature began.
func TestStripModuleSignatureHostModules(t *testing.T) {
	mods, _ := filepath.Glob("/lib/modules/*/kernel/drivers/virtio/virtio_mmio.ko*")
	if len(mods) == 0 {
		t.Skip("no host virtio_mmio module (apt-get install linux-image-cloud-amd64)")
	}
	raw, err := os.ReadFile(mods[0])
	if err != nil {
		t.Fatal(err)
	}
	plain, err := decompressModule(mods[0], raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(plain, []byte(moduleSigMarker)) {
		t.Skipf("%s is not signed", mods[0])
	}
	got, err := stripModuleSignature(mods[0], plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) >= len(plain) || bytes.Contains(got, []byte(moduleSigMarker)) || !bytes.HasPrefix(got, []byte("\x7fELF")) {
		t.Errorf("stripped %d of %d bytes; marker left: %v", len(plain)-len(got), len(plain), bytes.Contains(got, []byte(moduleSigMarker)))
	}
}

// TestInitramfsModulesUnsigned: a signed module (here compressed, as
// Debian's may be) reaches the initramfs without its signature.
func TestInitramfsModulesUnsigned(t *testing.T) {
	h := newFakeHost(t)
	plain := fakeELF([]byte("module virtio_console"))
	writeFile(t, filepath.Join(h.modules, "kernel/drivers/char/virtio_console.ko"), signModule(plain, 256, 256))
	img, err := Build(context.Background(), h.options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range parseNewc(t, raw) {
		if strings.HasSuffix(e.Name, "/virtio_console.ko") {
			found = true
			if e.Data != string(plain) {
				t.Errorf("%s: %d bytes, want the %d-byte unsigned ELF", e.Name, len(e.Data), len(plain))
			}
		}
	}
	if !found {
		t.Fatal("virtio_console.ko not in the initramfs")
	}
}
