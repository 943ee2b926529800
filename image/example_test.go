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
		KernelPath: "/nonexistent/vmlinuz-6.1.0-99-cloud-amd64",
		AgentPath:  "/usr/lib/petty/petty-agent",
	})
	var missing *image.MissingError
	if errors.As(err, &missing) {
		fmt.Println(missing.What)
		fmt.Println("install package", missing.Package)
	}
	// Output:
	// kernel /nonexistent/vmlinuz-6.1.0-99-cloud-amd64
	// install package linux-image-cloud-amd64
}
