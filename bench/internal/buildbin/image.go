package buildbin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/image"
)

// MinimalImage returns petty's minimal guest image (image.Build into the
// user's cache, a cache hit when unchanged) with agentBin as its agent,
// first building a static cmd/petty-agent into dir when agentBin is "". It
// returns the agent it used too.
func MinimalImage(dir, agentBin string) (string, *image.Image, error) {
	if agentBin == "" {
		var err error
		if agentBin, err = Build(dir, "petty-agent", "github.com/pettyvm/petty/cmd/petty-agent",
			[]string{"CGO_ENABLED=0"}, "-trimpath", "-ldflags=-s -w"); err != nil {
			return "", nil, err
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := image.Build(ctx, image.Options{AgentPath: agentBin, CacheDir: filepath.Join(cache, "petty")})
	if err != nil {
		return "", nil, fmt.Errorf("building the guest image: %w", err)
	}
	return agentBin, img, nil
}
