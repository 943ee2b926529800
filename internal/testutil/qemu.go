package testutil

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/qemu"
)

// QEMUFix says how to install what the real-guest QEMU tests need.
const QEMUFix = "apt-get install qemu-system-x86 busybox-static linux-image-cloud-amd64"

// RequireQEMU skips tb unless real guests can boot here under QEMU: it needs
// qemu-system-x86_64 and a Debian cloud kernel, and it is skipped with
// -short (real boots take seconds under TCG).
func RequireQEMU(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("boots real guests under QEMU; skipped with -short")
	}
	if _, err := qemu.FindBinary(); err != nil {
		tb.Skipf("qemu-system-x86_64 not found: %s", QEMUFix)
	}
	if k, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64"); len(k) == 0 {
		tb.Skipf("no /boot/vmlinuz-*-cloud-amd64: %s", QEMUFix)
	}
}

var guestImage struct {
	once sync.Once
	img  *image.Image
	err  error
}

// GuestImage builds the default guest image (kernel, initramfs with the
// static agent, and the default ext4 root filesystem) once per test process
// into a private cache that [Cleanup] removes, and returns it. Callers must
// not write to its files: boot the root filesystem from a copy or read-only.
func GuestImage(tb testing.TB) *image.Image {
	tb.Helper()
	RequireQEMU(tb)
	agent := Agent(tb)
	guestImage.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		guestImage.img, guestImage.err = image.Build(ctx, image.Options{
			AgentPath: agent,
			CacheDir:  filepath.Join(filepath.Dir(filepath.Dir(agent)), "image-cache"),
			RootFS:    true,
		})
	})
	if guestImage.err != nil {
		tb.Fatalf("testutil: building the guest image: %v", guestImage.err)
	}
	return guestImage.img
}
