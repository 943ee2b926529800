package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// logSink is Firecracker's human-readable log, reduced to a few lines.
type logSink struct {
	f         *os.File
	level     int
	showLevel bool
	origin    bool
	id        string
}

// openLogSink opens path as Firecracker does: the file (or named pipe) must
// exist. An empty path logs nowhere.
func openLogSink(path, level string, showLevel, origin bool, id string) (*logSink, error) {
	lv, _ := parseLevel(level)
	s := &logSink{level: lv, showLevel: showLevel, origin: origin, id: id}
	if path == "" {
		return s, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

func (s *logSink) info(msg string) { s.log(3, "INFO", msg) }

func (s *logSink) debug(msg string) { s.log(4, "DEBUG", msg) }

// log writes msg when the sink's level reaches rank (see logLevels).
func (s *logSink) log(rank int, level, msg string) {
	if s == nil || s.f == nil || s.level < rank {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s:main", time.Now().UTC().Format("2006-01-02T15:04:05.000000000"), s.id)
	if s.showLevel {
		b.WriteString(":" + level)
	}
	if s.origin {
		b.WriteString(":fakefirecracker")
	}
	fmt.Fprintf(&b, "] %s\n", msg)
	_, _ = s.f.WriteString(b.String())
}

func (s *logSink) close() {
	if s != nil && s.f != nil {
		_ = s.f.Close()
	}
}
