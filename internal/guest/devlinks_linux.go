package guest

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// devFDLinks are the /dev symlinks udev (or systemd) makes on a distribution
// and devtmpfs does not: bash's process substitution needs /dev/fd, many
// scripts read /dev/stdin.
var devFDLinks = []struct{ name, target string }{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

// linkDevFD creates the devFDLinks in dev that do not exist yet.
func linkDevFD(dev string, log *slog.Logger) {
	for _, l := range devFDLinks {
		err := os.Symlink(l.target, filepath.Join(dev, l.name))
		if err != nil && !errors.Is(err, fs.ErrExist) {
			log.Warn("link", "name", filepath.Join(dev, l.name), "err", err)
		}
	}
}
