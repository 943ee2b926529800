package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/vm"
)

// controlSocketName is the supervisor's control socket in a detached VM's
// run directory (mode 0600; the run directory is 0700). One request per
// connection: a JSON controlRequest line, answered by a JSON controlReply
// line.
const controlSocketName = "control.sock"

// maxControlLine bounds a control request or reply.
const maxControlLine = 64 << 10

// controlRequest asks a supervisor to act on its VM.
type controlRequest struct {
	// Op is "snapshot".
	Op string `json:"op"`
	// Dir is the snapshot directory (absolute).
	Dir string `json:"dir"`
	// TimeoutNS bounds the operation.
	TimeoutNS int64 `json:"timeout_ns"`
}

// controlReply is the supervisor's answer; Error is "" on success.
type controlReply struct {
	Error string `json:"error,omitempty"`
}

func (a *app) snapshotCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "snapshot [flags] NAME DIR",
		Short: "Snapshot a detached VM into DIR; the VM keeps running",
		Long: `Pause the detached VM NAME, write its device state, memory and writable disk
layer into DIR (created; it must not exist or be empty), and resume it. Start
any number of VMs from DIR with 'petty run --restore DIR'. DIR holds the
guest's memory: keep it private.`,
		Example: `  petty run --detach --name base
  petty exec base -- sh -c 'pip install requests'
  petty snapshot base ./base.snap
  petty run --restore ./base.snap -- python3 -c 'import requests'`,
		Args: exactArgs(2, "NAME and DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			return a.snapshotVM(cmd.Context(), args[0], args[1], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long the snapshot may take")
	return cmd
}

// snapshotVM asks the supervisor of the detached VM name to snapshot it.
func (a *app) snapshotVM(ctx context.Context, name, dir string, timeout time.Duration) error {
	r, err := a.load(name)
	if err != nil {
		return err
	}
	runDir, err := a.attachable(r)
	if err != nil {
		return err
	}
	if runDir == "" || r.State != stateRunning {
		return fmt.Errorf("VM %s is not running", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(runDir, controlSocketName))
	if err != nil {
		return fmt.Errorf("VM %s: its supervisor does not answer (%w); is it a VM of this petty version?", name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req, _ := json.Marshal(controlRequest{Op: "snapshot", Dir: abs, TimeoutNS: int64(timeout)})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("VM %s: %w", name, err)
	}
	var rep controlReply
	if err := readControlLine(conn, &rep); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("VM %s: snapshot: %w", name, ctx.Err())
		}
		return fmt.Errorf("VM %s: snapshot: %w", name, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("VM %s: %s", name, rep.Error)
	}
	return nil
}

// readControlLine reads one bounded JSON line into v.
func readControlLine(r io.Reader, v any) error {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxControlLine), 4096).ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// serveControl answers control requests for m on the run directory's
// control socket until the returned function is called.
func serveControl(m *vm.Machine) (stop func(), err error) {
	path := filepath.Join(m.RunDir(), controlSocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go handleControl(m, conn)
		}
	}()
	return func() { l.Close(); <-done }, nil
}

// handleControl serves one control connection.
func handleControl(m *vm.Machine, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req controlRequest
	var rep controlReply
	if err := readControlLine(conn, &req); err != nil {
		rep.Error = "bad request: " + err.Error()
	} else {
		_ = conn.SetReadDeadline(time.Time{})
		rep.Error = errText(doControl(m, &req))
	}
	data, _ := json.Marshal(rep)
	_, _ = conn.Write(append(data, '\n'))
}

// doControl runs one request.
func doControl(m *vm.Machine, req *controlRequest) error {
	switch req.Op {
	case "snapshot":
		if !filepath.IsAbs(req.Dir) {
			return fmt.Errorf("snapshot directory %q is not absolute", req.Dir)
		}
		timeout := time.Duration(req.TimeoutNS)
		if timeout <= 0 {
			timeout = 2 * time.Minute
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return m.Snapshot(ctx, req.Dir)
	default:
		return fmt.Errorf("unknown operation %q", req.Op)
	}
}

// errText is err's message, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
