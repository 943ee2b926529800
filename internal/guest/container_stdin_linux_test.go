package guest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pettyvm/petty/agent"
)

func TestExecContainerStdin(t *testing.T) {
	root := busyboxRoot(t)
	c := newTestClient(t)
	var out bytes.Buffer
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"sh", "-c", "read x; echo got $x"}, Root: root, NewNamespaces: true,
		Env: []string{"PATH=/bin"}, Stdin: strings.NewReader("hello\n"), Stdout: &out})
	if err != nil || out.String() != "got hello\n" {
		t.Fatalf("Exec = %v, output %q", err, out.String())
	}
}
