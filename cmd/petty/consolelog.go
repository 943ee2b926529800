package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// consoleLogName is a detached VM's console log in its run directory; the
// previous generation is consoleLogName + ".1".
const consoleLogName = "console.log"

// defaultConsoleLimit caps a detached VM's console log (both generations).
const defaultConsoleLimit = 8 << 20

// minConsoleLimit is the smallest --console-limit.
const minConsoleLimit = 8 << 10

// consoleLog is the console of a detached VM: an io.Writer handed out
// before its file can exist (the log lives in the VM's run directory, which
// vm makes at the latest when it starts the VMM), created at the first Write
// after open, or by ensure. It is capped at limit bytes on disk by rotation:
// when console.log would grow past limit/2 it becomes console.log.1
// (replacing the older one) and a new console.log starts. Writes before
// open, and after a failed write, are dropped; Write never fails, so that a
// full disk cannot stall the VMM.
type consoleLog struct {
	mu     sync.Mutex
	path   string
	half   int64
	f      *os.File
	size   int64
	broken bool // creating or writing failed: drop everything
}

// open sets the log's path and limit; the file is created later.
func (l *consoleLog) open(path string, limit int64) {
	if limit < minConsoleLimit {
		limit = minConsoleLimit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.path, l.half = path, limit/2
}

// ensure creates the log file now if it does not exist yet.
func (l *consoleLog) ensure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.create()
}

// create creates the file unless it is open, broken, or has no path.
func (l *consoleLog) create() error {
	if l.f != nil || l.path == "" {
		return nil
	}
	if l.broken {
		return errors.New("console log: an earlier write failed")
	}
	f, err := createLog(l.path)
	if err != nil {
		l.broken = true
		return err
	}
	l.f, l.size = f, 0
	return nil
}

func createLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
}

func (l *consoleLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.create() != nil || l.f == nil {
		return len(p), nil
	}
	data := p
	if int64(len(data)) > l.half {
		data = data[int64(len(data))-l.half:]
	}
	if l.size+int64(len(data)) > l.half {
		if err := l.rotate(); err != nil {
			l.drop()
			return len(p), nil
		}
	}
	n, err := l.f.Write(data)
	l.size += int64(n)
	if err != nil {
		l.drop()
	}
	return len(p), nil
}

// rotate moves the current log to .1 and starts a new one.
func (l *consoleLog) rotate() error {
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return err
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	f, err := createLog(l.path)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

func (l *consoleLog) drop() {
	l.broken = true
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

func (l *consoleLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop()
}

// parseSize parses a byte count with an optional binary suffix: 8388608,
// 512KiB, 8MiB, 1GiB (K, M, G alone mean the same).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, errors.Join(fmt.Errorf("bad size %q (want e.g. 8MiB)", s), err)
	}
	return n * mult, nil
}
