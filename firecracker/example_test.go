package firecracker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/pettyvm/petty/firecracker"
)

// Configure and boot a guest through the API socket of a Firecracker
// process started with `firecracker --api-sock /run/fc.sock`.
func Example() {
	ctx := context.Background()
	c := firecracker.NewClient("/run/fc.sock")
	defer c.Close()

	if err := c.PutMachineConfig(ctx, firecracker.MachineConfiguration{VcpuCount: 2, MemSizeMib: 512}); err != nil {
		log.Fatal(err)
	}
	if err := c.PutBootSource(ctx, firecracker.BootSource{
		KernelImagePath: "/var/lib/petty/vmlinux",
		BootArgs:        "console=ttyS0 reboot=k panic=1",
	}); err != nil {
		log.Fatal(err)
	}
	readOnly := false
	if err := c.PutDrive(ctx, firecracker.Drive{
		DriveID:      "rootfs",
		PathOnHost:   "/var/lib/petty/rootfs.ext4",
		IsRootDevice: true,
		IsReadOnly:   &readOnly,
	}); err != nil {
		log.Fatal(err)
	}
	if err := c.PutVsock(ctx, firecracker.Vsock{GuestCID: 3, UdsPath: "/run/fc.vsock"}); err != nil {
		log.Fatal(err)
	}
	if err := c.StartInstance(ctx); err != nil {
		log.Fatal(err)
	}
	info, err := c.DescribeInstance(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.State)
}

// Tell Firecracker's refusals apart from transport errors. Here a stand-in
// for Firecracker's API socket refuses the request as Firecracker refuses a
// kernel it cannot open.
func ExampleAPIError() {
	dir, err := os.MkdirTemp("", "firecracker-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "fc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	standIn := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"fault_message":"Cannot open the kernel image: No such file or directory (os error 2)"}`)
	})}
	go standIn.Serve(l)
	defer standIn.Close()

	c := firecracker.NewClient(sock)
	defer c.Close()

	err = c.PutBootSource(context.Background(), firecracker.BootSource{KernelImagePath: "/missing"})
	var apiErr *firecracker.APIError
	switch {
	case errors.As(err, &apiErr):
		fmt.Printf("Firecracker answered %d: %s\n", apiErr.StatusCode, apiErr.FaultMessage)
	case err != nil:
		fmt.Println("could not reach Firecracker:", err)
	}
	// Output: Firecracker answered 400: Cannot open the kernel image: No such file or directory (os error 2)
}
