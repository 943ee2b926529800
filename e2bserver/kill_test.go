package e2bserver_test

import (
	"testing"

	"connectrpc.com/connect"

	procpb "github.com/pettyvm/petty/e2b/envdpb/process"
	"github.com/pettyvm/petty/sandbox"
)

// TestProcessKillEndsEveryStream: SIGKILL ends the Start stream still
// open and a Connect stream of the same process.
func TestProcessKillEndsEveryStream(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.create(map[string]any{"templateID": "base"})
	pc, _ := e.clients(c, true)
	st, err := pc.Start(ctx(t), connect.NewRequest(&procpb.StartRequest{Process: sh("echo started; sleep 600"), Stdin: ptr(false)}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	pid := st.Msg().GetEvent().GetStart().GetPid()
	sel := &procpb.ProcessSelector{Selector: &procpb.ProcessSelector_Pid{Pid: pid}}
	cst, err := pc.Connect(ctx(t), connect.NewRequest(&procpb.ConnectRequest{Process: sel}))
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	if !cst.Receive() {
		t.Fatal(cst.Err())
	}
	if _, err := pc.SendSignal(ctx(t), connect.NewRequest(&procpb.SendSignalRequest{Process: sel, Signal: procpb.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]interface {
		Receive() bool
		Err() error
	}{"start": st, "connect": cst} {
		var end bool
		for s.Receive() {
			switch x := s.(type) {
			case *connect.ServerStreamForClient[procpb.StartResponse]:
				end = end || x.Msg().GetEvent().GetEnd() != nil
			case *connect.ServerStreamForClient[procpb.ConnectResponse]:
				end = end || x.Msg().GetEvent().GetEnd() != nil
			}
		}
		if !end {
			t.Errorf("%s stream: no end event (%v)", name, s.Err())
		}
	}
}
