package agentpb

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestExecStartUser checks the hand-added field user = 7 of ExecStart: the
// descriptor knows it and it survives a marshal round trip.
func TestExecStartUser(t *testing.T) {
	f := (&ExecStart{}).ProtoReflect().Descriptor().Fields().ByName("user")
	if f == nil || f.Number() != 7 || f.JSONName() != "user" {
		t.Fatalf("descriptor field user: %v", f)
	}
	b, err := proto.Marshal(&ExecStart{Args: []string{"id"}, User: "user", MaxOutput: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got ExecStart
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetUser() != "user" || got.GetMaxOutput() != 5 || len(got.Args) != 1 {
		t.Fatalf("round trip: %v", &got)
	}
}
