package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/retry"
)

// logsPollInterval bounds how long petty logs -f takes to notice new
// console output or a rotation.
const logsPollInterval = 100 * time.Millisecond

func (a *app) logsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] NAME",
		Short: "Print a detached VM's console log",
		Long: `Print the console log of the detached VM NAME: what its guest and VMM printed,
the last --console-limit bytes of it (petty run --detach). With -f, keep
printing new output until the VM exits. When stdout is a terminal, control
characters from the guest are shown escaped (\x1b...), never interpreted.`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) (retErr error) {
			ctx, caught, stop := interruptible(cmd.Context())
			defer stop()
			defer whenInterrupted(caught, &retErr)
			return a.logs(ctx, args[0], follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the VM exits")
	return cmd
}

func (a *app) logs(ctx context.Context, name string, follow bool) (retErr error) {
	r, err := a.load(name)
	if err != nil {
		return err
	}
	dir, err := a.attachable(r)
	if err != nil {
		return err
	}
	v := a.liveState(r)
	if dir == "" || v.state != stateRunning {
		return fmt.Errorf("VM %s is %s: its console log went with its run directory", name, v.state)
	}
	out := a.stdout
	if isTerminal(out) {
		e := newEscaper(out)
		defer func() { retErr = errors.Join(retErr, e.Flush()) }()
		out = e
	}
	path := filepath.Join(dir, consoleLogName)
	f, err := openCurrentLog(ctx, path)
	if err != nil {
		return fmt.Errorf("VM %s: console log: %w", name, err)
	}
	defer func() { f.Close() }()
	// The previous generation, unless a rotation since made it f.
	if old, err := openLog(path + ".1"); err == nil {
		oldFI, err1 := old.Stat()
		curFI, err2 := f.Stat()
		if err1 == nil && err2 == nil && !os.SameFile(oldFI, curFI) {
			_, err = io.Copy(out, old)
		}
		old.Close()
		if err != nil {
			return err
		}
	}
	if _, err := io.Copy(out, f); err != nil || !follow {
		return err
	}

	att, err := a.attach(r)
	if err != nil || att == nil {
		return err
	}
	defer att.Close()
	exited := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if att.Wait(wctx) == nil {
			close(exited)
		}
	}()
	tick := time.NewTicker(logsPollInterval)
	defer tick.Stop()
	for {
		var done bool
		select {
		case <-ctx.Done():
			return nil
		case <-exited:
			done = true
		case <-tick.C:
		}
		if _, err := io.Copy(out, f); err != nil {
			return err
		}
		// Rotated: the rest of the old file was just copied; go on with
		// the new one.
		if cur, err := os.Lstat(path); err == nil {
			if fi, err := f.Stat(); err == nil && !os.SameFile(fi, cur) {
				if nf, err := openLog(path); err == nil {
					f.Close()
					f = nf
					if _, err := io.Copy(out, f); err != nil {
						return err
					}
				}
			}
		}
		if done {
			return nil
		}
	}
}

// openCurrentLog opens console.log, waiting out the instant of a rotation
// when it does not exist (renamed to console.log.1, not yet created again).
func openCurrentLog(ctx context.Context, path string) (*os.File, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var f *os.File
	err := retry.Do(ctx, retry.Backoff{Min: time.Millisecond, Max: 50 * time.Millisecond}, func(context.Context) error {
		var err error
		f, err = openLog(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return retry.Permanent(err)
		}
		return err
	})
	return f, err
}

// openLog opens a console log for reading: a regular file of ours, never
// through a symlink.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file of ours", path)
	}
	return f, nil
}
