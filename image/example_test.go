package image_test

import (
	"context"
	"fmt"

	"github.com/pettyvm/petty/image"
)

func ExampleBuild() {
	img, err := image.Build(context.Background(), image.Options{
		AgentPath: "/usr/lib/petty/petty-agent",
		RootFS:    true,
	})
	if err != nil {
		fmt.Println(err) // e.g. a *MissingError: "... apt-get install busybox-static"
		return
	}
	fmt.Println(img.Kernel, img.Initrd, img.RootFS, img.Cached)
}
