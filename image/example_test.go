package image_test

import (
	"context"
	"errors"
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

func ExampleMissingError() {
	_, err := image.Build(context.Background(), image.Options{
		AgentPath:   "/usr/lib/petty/petty-agent",
		BusyboxPath: "/nonexistent/busybox",
	})
	var missing *image.MissingError
	if errors.As(err, &missing) {
		fmt.Println("install package", missing.Package)
	}
}
