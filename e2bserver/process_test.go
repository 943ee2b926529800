package e2bserver_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	procpb "github.com/pettyvm/petty/e2b/envdpb/process"
	"github.com/pettyvm/petty/e2b/envdpb/process/processconnect"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
)

// events collects a Start or Connect stream.
type events struct {
	pid      uint32
	stdout   strings.Builder
	stderr   strings.Builder
	keep     int
	end      *procpb.ProcessEvent_EndEvent
	startIdx int // index of the start event (must be 0)
	n        int
}

func (ev *events) add(e *procpb.ProcessEvent) {
	switch x := e.GetEvent().(type) {
	case *procpb.ProcessEvent_Start:
		ev.pid, ev.startIdx = x.Start.GetPid(), ev.n
	case *procpb.ProcessEvent_Data:
		ev.stdout.Write(x.Data.GetStdout())
		ev.stderr.Write(x.Data.GetStderr())
	case *procpb.ProcessEvent_Keepalive:
		ev.keep++
	case *procpb.ProcessEvent_End:
		ev.end = x.End
	}
	ev.n++
}

// start runs a Start stream to its end (or error).
func start(ctx context.Context, pc processconnect.ProcessClient, req *procpb.StartRequest, hdr http.Header) (*events, error) {
	r := connect.NewRequest(req)
	for k, v := range hdr {
		r.Header()[k] = v
	}
	st, err := pc.Start(ctx, r)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ev := &events{startIdx: -1}
	for st.Receive() {
		ev.add(st.Msg().GetEvent())
	}
	return ev, st.Err()
}

func sh(script string) *procpb.ProcessConfig {
	return &procpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", script}}
}

func ptr[T any](v T) *T { return &v }

func TestProcessStart(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base", "envVars": map[string]string{"SBX": "sandbox-wide"}})
	dir := t.TempDir()
	for _, json := range []bool{true, false} {
		pc, _ := e.clients(c, json)
		ev, err := start(ctx(t), pc, &procpb.StartRequest{Process: sh("echo out; echo err >&2; exit 3"), Stdin: ptr(false)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ev.startIdx != 0 || ev.pid == 0 || ev.stdout.String() != "out\n" || ev.stderr.String() != "err\n" || ev.end == nil ||
			ev.end.ExitCode != 3 || !ev.end.Exited || ev.end.Status != "exit status 3" {
			t.Errorf("json %v: start at %d, pid %d, stdout %q, stderr %q, end %v", json, ev.startIdx, ev.pid, ev.stdout.String(), ev.stderr.String(), ev.end)
		}

		cfg := sh(`pwd; echo "$X $SBX"; cat; echo eof`)
		cfg.Cwd, cfg.Envs = &dir, map[string]string{"X": "x y"}
		ev, err = start(ctx(t), pc, &procpb.StartRequest{Process: cfg, Stdin: ptr(false)}, nil)
		if err != nil || ev.stdout.String() != dir+"\nx y sandbox-wide\neof\n" || ev.end.ExitCode != 0 {
			t.Errorf("cwd, envs, no stdin: %q %v", ev.stdout.String(), err)
		}
	}
	pc, _ := e.clients(c, true)
	ev, err := start(ctx(t), pc, &procpb.StartRequest{Process: sh("sleep 1.2")}, http.Header{"Keepalive-Ping-Interval": {"0.2"}})
	if err != nil || ev.keep < 3 || ev.end.ExitCode != 0 {
		t.Errorf("keepalives every 0.2 s over 1.2 s: %d (%v)", ev.keep, err)
	}
	if _, err := start(ctx(t), pc, &procpb.StartRequest{Process: &procpb.ProcessConfig{}}, nil); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("no cmd: %v", err)
	}
	if _, err := pc.Update(ctx(t), connect.NewRequest(&procpb.UpdateRequest{})); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("Update: %v, want unimplemented", err)
	}
}

// waitPID reads the pid a command wrote to path.
func waitPID(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// waitDead waits for pid to be gone (or a zombie).
func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !testutil.Alive(pid) {
			return
		}
	}
	t.Errorf("process %d still runs after %v", pid, within)
}

func TestProcessDeadlineKills(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	pc, _ := e.clients(c, true)
	pidFile := filepath.Join(t.TempDir(), "pid")
	cctx, cancel := context.WithTimeout(t.Context(), time.Second) // Connect-Timeout-Ms: 1000
	defer cancel()
	began := time.Now()
	_, err := start(cctx, pc, &procpb.StartRequest{Process: sh("echo $$ > " + pidFile + "; exec sleep 60")}, nil)
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Errorf("Start past its deadline: %v", err)
	}
	pid := waitPID(t, pidFile)
	waitDead(t, pid, 10*time.Second)
	t.Logf("killed %v after the start", time.Since(began).Round(time.Millisecond))
	// The agent reports the end a moment after the process is gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := pc.List(ctx(t), connect.NewRequest(&procpb.ListRequest{}))
		if err == nil && len(res.Msg.Processes) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("List after the deadline: %v %v", res, err)
		}
	}
}

func TestProcessDisconnectConnectSignal(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	pc, _ := e.clients(c, false)
	pidFile := filepath.Join(t.TempDir(), "pid")

	sctx, cancel := context.WithCancel(t.Context())
	r := connect.NewRequest(&procpb.StartRequest{Process: sh("echo $$ > " + pidFile + "; exec sleep 60"), Tag: ptr("bg")})
	st, err := pc.Start(sctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() || st.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no start event: %v", st.Err())
	}
	pid := st.Msg().GetEvent().GetStart().GetPid()
	cancel() // the client goes away
	st.Close()
	host := waitPID(t, pidFile)
	if uint32(host) != pid {
		t.Errorf("start event pid %d, the process is %d", pid, host)
	}
	time.Sleep(200 * time.Millisecond) // let a wrong kill land
	if !testutil.Alive(host) {
		t.Fatal("the process died with its client's stream")
	}
	res, err := pc.List(ctx(t), connect.NewRequest(&procpb.ListRequest{}))
	if err != nil || len(res.Msg.Processes) != 1 || res.Msg.Processes[0].Pid != pid || res.Msg.Processes[0].GetTag() != "bg" ||
		res.Msg.Processes[0].Config.Cmd != "/bin/sh" {
		t.Fatalf("List: %v %v", res, err)
	}

	// Connect by tag, then SIGKILL by pid: the connected stream ends.
	cst, err := pc.Connect(ctx(t), connect.NewRequest(&procpb.ConnectRequest{Process: &procpb.ProcessSelector{Selector: &procpb.ProcessSelector_Tag{Tag: "bg"}}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	if !cst.Receive() || cst.Msg().GetEvent().GetStart().GetPid() != pid {
		t.Fatalf("Connect: no start event for %d: %v", pid, cst.Err())
	}
	sel := &procpb.ProcessSelector{Selector: &procpb.ProcessSelector_Pid{Pid: pid}}
	if _, err := pc.SendSignal(ctx(t), connect.NewRequest(&procpb.SendSignalRequest{Process: sel, Signal: procpb.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	for cst.Receive() {
		ev.add(cst.Msg().GetEvent())
	}
	if ev.end == nil || ev.end.Exited || ev.end.ExitCode != -1 || ev.end.Status != "signal: killed" {
		t.Errorf("end after SIGKILL: %v (%v)", ev.end, cst.Err())
	}
	waitDead(t, host, 5*time.Second)
	for _, err := range []error{
		func() error {
			_, err := pc.SendSignal(ctx(t), connect.NewRequest(&procpb.SendSignalRequest{Process: sel, Signal: procpb.Signal_SIGNAL_SIGKILL}))
			return err
		}(),
		func() error {
			_, err := pc.SendInput(ctx(t), connect.NewRequest(&procpb.SendInputRequest{Process: sel, Input: &procpb.ProcessInput{Input: &procpb.ProcessInput_Stdin{Stdin: []byte("x")}}}))
			return err
		}(),
		func() error {
			st, err := pc.Connect(ctx(t), connect.NewRequest(&procpb.ConnectRequest{Process: sel}))
			if err != nil {
				return err
			}
			defer st.Close()
			if st.Receive() {
				t.Errorf("Connect to an ended process: %v", st.Msg())
			}
			return st.Err()
		}(),
	} {
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("after the end: %v, want not_found", err)
		}
	}
}

func TestProcessStdin(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	for _, json := range []bool{true, false} {
		pc, _ := e.clients(c, json)
		st, err := pc.Start(ctx(t), connect.NewRequest(&procpb.StartRequest{Process: sh("cat; echo done"), Stdin: ptr(true)}))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		sel := &procpb.ProcessSelector{Selector: &procpb.ProcessSelector_Pid{Pid: st.Msg().GetEvent().GetStart().GetPid()}}
		for _, s := range []string{"hello ", "stdin\n"} {
			if _, err := pc.SendInput(ctx(t), connect.NewRequest(&procpb.SendInputRequest{Process: sel, Input: &procpb.ProcessInput{Input: &procpb.ProcessInput_Stdin{Stdin: []byte(s)}}})); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pc.CloseStdin(ctx(t), connect.NewRequest(&procpb.CloseStdinRequest{Process: sel})); err != nil {
			t.Fatal(err)
		}
		ev := &events{}
		for st.Receive() {
			ev.add(st.Msg().GetEvent())
		}
		if ev.stdout.String() != "hello stdin\ndone\n" || ev.end == nil || ev.end.ExitCode != 0 {
			t.Errorf("json %v: stdout %q, end %v, %v", json, ev.stdout.String(), ev.end, st.Err())
		}
		st.Close()
	}
}
