package main

import (
	"strings"
	"testing"

	"github.com/pettyvm/petty/internal/testutil"
)

// TestQEMUDebianImage boots the real default image (Debian, built with
// mmdebstrap by testutil.DebianImage, shared by the test binaries of one
// checkout) in a QEMU guest and runs its interpreters and tools there, as
// root and as user.
func TestQEMUDebianImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Debian image (minutes the first time)")
	}
	h := newQEMUHarness(t)
	img := testutil.DebianImage(t)
	flags := []string{"--image", img.Dir, "--memory", "512"}

	res := h.runQEMU(nil, "qemu", flags, "sh", "-c",
		`python3 -c 'print(6*7)' && node -e 'console.log(6*7)' && git --version && bash -c 'echo bash $BASH_VERSINFO' && id -u`)
	if res.code != 0 {
		t.Fatalf("petty run --image %s: code %d, stdout %q, stderr %q", img.Dir, res.code, res.stdout, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 5 || lines[0] != "42" || lines[1] != "42" || !strings.HasPrefix(lines[2], "git version ") ||
		!strings.HasPrefix(lines[3], "bash 5") || lines[4] != "0" {
		t.Errorf("python3, node, git, bash, id -u printed %q", res.stdout)
	}

	res = h.runQEMU(nil, "qemu", append(flags, "--user", "user"), "sh", "-c", `id -u; echo $HOME; python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print("venv")'`)
	if res.code != 0 || strings.TrimSpace(res.stdout) != "1000\n/home/user\nvenv" {
		t.Errorf("as user: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}
