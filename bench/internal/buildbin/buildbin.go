// Package buildbin builds petty's executables for the benchmarks.
package buildbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build runs "go build -o dir/name [flags] pkg" with env added to the
// environment and returns the executable's path. It is run from the bench
// module, whose replace directive points github.com/pettyvm/petty at the
// parent directory, so petty's internal main packages build too.
func Build(dir, name, pkg string, env []string, flags ...string) (string, error) {
	path := filepath.Join(dir, name)
	args := append([]string{"build", "-o", path}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return path, nil
}
