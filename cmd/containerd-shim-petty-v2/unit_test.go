package main

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
)

func ptr[T any](v T) *T { return &v }

func TestVMSize(t *testing.T) {
	spec := func(mem *int64, quota *int64, period *uint64) *ociSpec {
		return &ociSpec{Linux: &ociLinux{Resources: &ociResources{
			Memory: &ociMemory{Limit: mem},
			CPU:    &ociCPU{Quota: quota, Period: period},
		}}}
	}
	tests := []struct {
		name      string
		spec      *ociSpec
		mem, cpus int
	}{
		{name: "no spec", spec: nil, mem: MinMemoryMiB, cpus: 1},
		{name: "no limits", spec: &ociSpec{}, mem: MinMemoryMiB, cpus: 1},
		{name: "small memory", spec: spec(ptr(int64(64<<20)), nil, nil), mem: MinMemoryMiB, cpus: 1},
		{name: "memory rounds up", spec: spec(ptr(int64(512<<20+1)), nil, nil), mem: 513, cpus: 1},
		{name: "quota 1.5 cpus", spec: spec(nil, ptr(int64(150000)), ptr(uint64(100000))), mem: MinMemoryMiB, cpus: 2},
		{name: "quota default period", spec: spec(nil, ptr(int64(300000)), nil), mem: MinMemoryMiB, cpus: 3},
		{name: "quota capped", spec: spec(nil, ptr(int64(10000000)), nil), mem: MinMemoryMiB, cpus: MaxVCPUs},
		{name: "unlimited quota", spec: spec(nil, ptr(int64(-1)), nil), mem: MinMemoryMiB, cpus: 1},
		{name: "pod annotations", spec: &ociSpec{Annotations: map[string]string{
			annSandboxMemory: "1073741824", annSandboxCPUQuota: "250000", annSandboxCPUPeriod: "100000",
		}}, mem: 1024, cpus: 3},
		{name: "pod annotations win", spec: func() *ociSpec {
			s := spec(ptr(int64(64<<20)), ptr(int64(100000)), nil)
			s.Annotations = map[string]string{annSandboxMemory: "536870912", annSandboxCPUQuota: "200000"}
			return s
		}(), mem: 512, cpus: 2},
		{name: "bad annotations ignored", spec: &ociSpec{Annotations: map[string]string{annSandboxMemory: "lots", annSandboxCPUQuota: "-1"}}, mem: MinMemoryMiB, cpus: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, cpus := vmSize(tt.spec)
			if mem != tt.mem || cpus != tt.cpus {
				t.Errorf("vmSize = %d MiB, %d vCPUs; want %d, %d", mem, cpus, tt.mem, tt.cpus)
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		want uint32
	}{
		{nil, 0},
		{&agent.ExitError{Code: 7}, 7},
		{&agent.ExitError{Code: -1, Signal: "SIGKILL"}, 137},
		{&agent.ExitError{Code: -1, Signal: "SIGTERM"}, 143},
		{errors.New("connection lost"), exitVMGone},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestGuestMetrics(t *testing.T) {
	in := "cpu  100 5 50 1000 0 2 3 0 0 0\ncpu0 100 5 50 1000 0 2 3 0 0 0\nMemTotal:         230000 kB\nMemFree:  1 kB\nMemAvailable:     180000 kB\n"
	m := guestMetrics(in)
	if m.CPU.UserUsec != 105*10000 || m.CPU.SystemUsec != 55*10000 || m.CPU.UsageUsec != 160*10000 {
		t.Errorf("cpu = %+v", m.CPU)
	}
	if m.Memory.UsageLimit != 230000*1024 || m.Memory.Usage != 50000*1024 {
		t.Errorf("memory = %+v", m.Memory)
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	got     strings.Builder
	closed  bool
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got.Write(p)
	return len(p), nil
}

func (b *blockingWriter) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// A reader that stopped reading must not block the agent's stream.
func TestAsyncWriterNeverBlocks(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	a := newAsyncWriter(bw)
	done := make(chan struct{})
	go func() {
		for range outputQueue * 2 {
			a.Write([]byte("x"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stalled reader")
	}
	close(bw.release)
	a.Close()
	bw.mu.Lock()
	defer bw.mu.Unlock()
	if !bw.closed || bw.got.Len() < outputQueue || bw.got.Len() > outputQueue+1 {
		t.Errorf("closed %v, delivered %d bytes; want closed and the queue's %d", bw.closed, bw.got.Len(), outputQueue)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) { f.n++; return 0, io.ErrClosedPipe }
func (f *failWriter) Close() error                { return nil }

// A failed write discards the rest instead of failing the process.
func TestAsyncWriterDiscardsAfterError(t *testing.T) {
	fw := &failWriter{}
	a := newAsyncWriter(fw)
	for range 10 {
		if n, err := a.Write([]byte("data")); n != 4 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	a.Close()
	if fw.n != 1 {
		t.Errorf("%d writes reached the failed writer, want 1", fw.n)
	}
}
