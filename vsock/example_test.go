package vsock_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/pettyvm/petty/vsock"
)

// Connect to port 1024 of a guest whose Firecracker vsock device has
// uds_path /run/fc.vsock, waiting up to 10s for the guest to listen.
func ExampleDialRetry() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vsock.DialRetry(ctx, "/run/fc.vsock", 1024)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("connected, host port", c.HostPort())
	if _, err := io.WriteString(c, "hello, guest\n"); err != nil {
		log.Fatal(err)
	}
}

// Accept connections the guest makes to host port 52.
func ExampleListen() {
	l, err := vsock.Listen("/run/fc.vsock", 52) // listens on /run/fc.vsock_52
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	c, err := l.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	io.Copy(c, c) // echo
}
