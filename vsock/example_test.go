package vsock_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/vsock"
)

// standInDevice stands in for a Firecracker vsock device's uds_path: it
// answers one "CONNECT <port>\n" with "OK 1073741824\n" and then prints
// what the host sends. It returns the path and a channel closed when done.
func standInDevice(dir string) (string, <-chan struct{}) {
	path := filepath.Join(dir, "fc.vsock")
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		fmt.Printf("device got %q\n", line)
		io.WriteString(c, "OK 1073741824\n")
		rest, _ := io.ReadAll(br)
		fmt.Printf("guest got %q\n", rest)
	}()
	return path, done
}

// Connect to port 1024 of a guest whose Firecracker vsock device has
// uds_path fc.vsock (here a stand-in), waiting up to 10s for the guest to
// listen.
func ExampleDialRetry() {
	dir, err := os.MkdirTemp("", "vsock-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	udsPath, deviceDone := standInDevice(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vsock.DialRetry(ctx, udsPath, 1024)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected, host port", c.HostPort())
	if _, err := io.WriteString(c, "hello, guest\n"); err != nil {
		log.Fatal(err)
	}
	c.Close()
	<-deviceDone
	// Output:
	// device got "CONNECT 1024\n"
	// connected, host port 1073741824
	// guest got "hello, guest\n"
}

// Accept connections the guest makes to host port 52: Firecracker connects
// to "<uds_path>_52", as the stand-in guest here does.
func ExampleListen() {
	dir, err := os.MkdirTemp("", "vsock-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	udsPath := filepath.Join(dir, "fc.vsock")

	l, err := vsock.Listen(udsPath, 52) // listens on fc.vsock_52
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() { // the guest
		c, err := net.Dial("unix", udsPath+"_52")
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "hello, host\n")
		c.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	c, err := l.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("%s: %q\n", c.LocalAddr().Network(), line)
	// Output: vsock: "hello, host\n"
}
