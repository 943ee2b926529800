package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/guest"
)

// startAgent serves an in-process agent on a unix socket, standing in for
// petty-agent inside a guest, and returns a connected client.
func startAgent() (c *agent.Client, stop func()) {
	dir, _ := os.MkdirTemp("", "petty-example")
	l, err := net.Listen("unix", filepath.Join(dir, "agent.sock"))
	if err != nil {
		panic(err)
	}
	srv := &guest.Server{}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		panic(err)
	}
	if err := agent.Authenticate(context.Background(), conn, ""); err != nil {
		panic(err)
	}
	c = agent.NewClient(conn)
	return c, func() {
		c.Close()
		srv.Close()
		<-done
		os.RemoveAll(dir)
	}
}

func ExampleClient_Exec() {
	c, stop := startAgent()
	defer stop()

	var stdout bytes.Buffer
	err := c.Exec(context.Background(), &agent.Cmd{
		Args:   []string{"sh", "-c", "tr a-z A-Z; exit 3"},
		Stdin:  strings.NewReader("hello from the host\n"),
		Stdout: &stdout,
	})
	var exitErr *agent.ExitError
	if errors.As(err, &exitErr) {
		fmt.Println("exit code:", exitErr.Code)
	}
	fmt.Print(stdout.String())
	// Output:
	// exit code: 3
	// HELLO FROM THE HOST
}

func ExampleClient_Output() {
	c, stop := startAgent()
	defer stop()

	out, err := c.Output(context.Background(), "echo", "hi")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", out)
	// Output: "hi\n"
}

func ExampleClient_WriteFile() {
	c, stop := startAgent()
	defer stop()
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "petty-example")
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "etc", "motd")
	if err := c.WriteFile(ctx, path, []byte("welcome\n"), 0o644, agent.CreateParents()); err != nil {
		panic(err)
	}
	data, _ := c.ReadFile(ctx, path)
	fmt.Printf("%s", data)

	_, err := c.ReadFile(ctx, filepath.Join(dir, "missing"))
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// welcome
	// true
}

func ExampleSerialHandshake() {
	// One end of the pipe stands in for the guest's virtio-serial port, the
	// other for the host's chardev socket.
	port, host := net.Pipe()
	srv := &guest.Server{}
	done := make(chan struct{})
	go func() { srv.ServeSerial(port); close(done) }()
	defer func() { srv.Close(); <-done }()

	ctx := context.Background()
	if err := agent.SerialHandshake(ctx, host); err != nil {
		panic(err)
	}
	if err := agent.Authenticate(ctx, host, ""); err != nil {
		panic(err)
	}
	c := agent.NewClient(host)
	defer c.Close()
	info, err := c.Ping(ctx)
	fmt.Println(info.Version, err)
	// Output: dev <nil>
}
