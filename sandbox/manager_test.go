package sandbox_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
)

func TestCreateExecDestroy(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{Labels: map[string]string{"team": "a"}, Env: []string{"GREETING=hello"}})
	info := s.Info()
	if info.State != "running" || info.VMMPID == 0 || info.MemoryMiB != 256 || info.VCPUs != 2 {
		t.Errorf("Info = %+v", info)
	}
	res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"sh", "-c", `echo "$GREETING $X"; echo oops >&2; exit 3`}, Env: []string{"X=world"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "hello world\n" || string(res.Stderr) != "oops\n" || res.ExitCode != 3 || res.Truncated || res.TimedOut {
		t.Errorf("Run = %+v stdout %q stderr %q", res.ExitStatus, res.Stdout, res.Stderr)
	}
	if got, err := m.Get(s.ID()); err != nil || got != s {
		t.Errorf("Get = %v, %v", got, err)
	}
	pid := info.VMMPID
	if err := m.Destroy(t.Context(), s.ID()); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("VMM %d still runs after Destroy", pid)
	}
	if _, err := m.Get(s.ID()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get after Destroy: %v, want ErrNotFound", err)
	}
	if _, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"true"}}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Run after Destroy: %v, want ErrNotFound", err)
	}
	if err := m.Destroy(t.Context(), s.ID()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("second Destroy: %v, want ErrNotFound", err)
	}
}

func TestLimits(t *testing.T) {
	m := fakeManager(t, sandbox.Config{MaxSandboxes: 2, HostMemoryMiB: 1024, MemoryShare: 0.5})
	create(t, m, sandbox.Options{MemoryMiB: 300})
	_, err := m.Create(t.Context(), sandbox.Options{MemoryMiB: 300})
	var le *sandbox.LimitError
	if !errors.As(err, &le) || !errors.Is(err, sandbox.ErrLimit) {
		t.Fatalf("memory over the share: %v, want a *LimitError", err)
	}
	want := sandbox.LimitError{Resource: "memory", Requested: 300, InUse: 300, Limit: 512, HostMiB: 1024, Share: 0.5}
	if diff := cmp.Diff(want, *le); diff != "" {
		t.Errorf("LimitError (-want +got):\n%s", diff)
	}
	if !strings.Contains(err.Error(), "300 MiB requested + 300 MiB in use > 512 MiB allowed (50% of 1024 MiB") {
		t.Errorf("message %q does not name the numbers", err)
	}
	create(t, m, sandbox.Options{MemoryMiB: 128})
	_, err = m.Create(t.Context(), sandbox.Options{MemoryMiB: 128})
	if !errors.As(err, &le) || le.Resource != "sandboxes" || le.Limit != 2 {
		t.Errorf("third sandbox: %v, want a count LimitError", err)
	}
	_, err = m.Create(t.Context(), sandbox.Options{MemoryMiB: 64})
	var ie *sandbox.InvalidError
	if !errors.As(err, &ie) || ie.Field != "memory_mib" {
		t.Errorf("64 MiB: %v, want an InvalidError on memory_mib", err)
	}
}

func TestExpiry(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{Timeout: 200 * time.Millisecond})
	keep := create(t, m, sandbox.Options{Timeout: time.Hour})
	pid := s.Info().VMMPID
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("sandbox did not expire")
	}
	if _, err := m.Get(s.ID()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get after expiry: %v", err)
	}
	if !gone(pid) {
		// Done closes before the VMM is reaped; destroy finishes soon after.
		deadline := time.Now().Add(10 * time.Second)
		for !gone(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !gone(pid) {
			t.Errorf("VMM %d of the expired sandbox still runs", pid)
		}
	}
	if got := m.List(nil); len(got) != 1 || got[0] != keep {
		t.Errorf("List = %v, want only the other sandbox", got)
	}
}

func TestExtend(t *testing.T) {
	m := fakeManager(t, sandbox.Config{MaxTimeout: time.Hour})
	s := create(t, m, sandbox.Options{Timeout: 300 * time.Millisecond})
	if err := s.Extend(time.Minute); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(s.Info().ExpiresAt); left < 50*time.Second {
		t.Errorf("after Extend the sandbox expires in %v", left)
	}
	select {
	case <-s.Done():
		t.Fatal("extended sandbox expired")
	case <-time.After(time.Second):
	}
	if err := s.SetTimeout(2 * time.Hour); !errors.Is(err, sandbox.ErrInvalid) {
		t.Errorf("SetTimeout over the maximum: %v", err)
	}
}

func TestListLabels(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	a := create(t, m, sandbox.Options{Labels: map[string]string{"team": "a", "env": "x"}})
	b := create(t, m, sandbox.Options{Labels: map[string]string{"team": "b"}})
	ids := func(ss []*sandbox.Sandbox) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID())
		}
		return out
	}
	for _, tt := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{a.ID(), b.ID()}},
		{map[string]string{"team": "a"}, []string{a.ID()}},
		{map[string]string{"team": "b"}, []string{b.ID()}},
		{map[string]string{"team": "a", "env": "y"}, nil},
	} {
		if diff := cmp.Diff(tt.want, ids(m.List(tt.filter))); diff != "" {
			t.Errorf("List(%v) (-want +got):\n%s", tt.filter, diff)
		}
	}
}

func TestCloseDestroysAll(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	var pids []int
	for range 3 {
		pids = append(pids, create(t, m, sandbox.Options{}).Info().VMMPID)
	}
	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("VMM %d survived Close", pid)
		}
	}
	if _, err := m.Create(t.Context(), sandbox.Options{}); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("Create after Close: %v", err)
	}
}

func TestCloseAbortsBoot(t *testing.T) {
	m := fakeManager(t, sandbox.Config{BootTimeout: time.Minute})
	t.Setenv("FAKEFC_GUEST_CMD", "exec sleep 120") // a guest whose agent never answers
	errc := make(chan error, 1)
	go func() {
		_, err := m.Create(t.Context(), sandbox.Options{})
		errc <- err
	}()
	// Wait until the boot is under way (the VMM runs), then Close.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kids, _ := testutil.Children(); len(kids) > 0 {
			break
		}
	}
	began := time.Now()
	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(began); el > 10*time.Second {
		t.Errorf("Close took %v with a boot under way", el)
	}
	if err := <-errc; err == nil {
		t.Error("the aborted Create succeeded")
	}
}
