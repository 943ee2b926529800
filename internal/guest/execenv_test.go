package guest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/agent"
)

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name       string
		base, over []string
		want       []string
	}{
		{"add", []string{"A=1"}, []string{"B=2"}, []string{"A=1", "B=2"}},
		{"override in place", []string{"A=1", "B=2"}, []string{"A=3"}, []string{"A=3", "B=2"}},
		{"later wins", nil, []string{"A=1", "A=2"}, []string{"A=2"}},
		{"empty value", []string{"A=1"}, []string{"A="}, []string{"A="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mergeEnv(tt.base, tt.over)); diff != "" {
				t.Errorf("mergeEnv (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCommandEnvGuest checks the clean environment a guest's commands get.
func TestCommandEnvGuest(t *testing.T) {
	id := identity{name: "user", home: "/home/user"}
	got := commandEnv(id, true, []string{"FOO=bar", "LANG=fr_FR.UTF-8"})
	want := []string{"PATH=" + defaultPath, "LANG=fr_FR.UTF-8", "HOME=/home/user", "USER=user", "LOGNAME=user", "FOO=bar"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commandEnv (-want +got):\n%s", diff)
	}
}

func TestCommandDir(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name, dir string
		id        identity
		guest     bool
		want      string
	}{
		{"requested", "/srv", identity{home: home}, true, "/srv"},
		{"home in a guest", "", identity{home: home}, true, home},
		{"missing home", "", identity{home: home + "/nope"}, true, "/"},
		{"agent's own outside a guest", "", identity{home: home}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commandDir(tt.dir, tt.id, tt.guest); got != tt.want {
				t.Errorf("commandDir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLookupIdentityUnknown(t *testing.T) {
	if _, err := lookupIdentity("no-such-user-petty"); err == nil {
		t.Fatal("no error for an unknown user")
	}
	id, err := lookupIdentity("")
	if err != nil || id.cred != nil {
		t.Fatalf("own identity: %+v, %v", id, err)
	}
	if os.Getuid() == 0 {
		root, err := lookupIdentity("0")
		if err != nil || root.cred == nil || root.cred.Uid != 0 || root.name != "root" {
			t.Fatalf("uid 0: %+v, %v", root, err)
		}
	}
}

// TestExecUser runs commands as another user of the host's /etc/passwd
// through the agent (as root only: setuid needs it).
func TestExecUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	c := newTestClient(t)
	var out bytes.Buffer
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"sh", "-c", "id -u; echo $USER"}, User: "nobody", Dir: "/", Stdout: &out})
	if err != nil || out.String() != "65534\nnobody\n" {
		t.Errorf("as nobody: %q, %v", out.String(), err)
	}
	err = c.Exec(testContext(t), &agent.Cmd{Args: []string{"true"}, User: "petty-no-such-user"})
	if err == nil || !strings.Contains(err.Error(), "petty-no-such-user") {
		t.Errorf("unknown user: %v", err)
	}
}

// TestExecBadWorkdir: a missing working directory is reported as such, not
// as a missing command.
func TestExecBadWorkdir(t *testing.T) {
	c := newTestClient(t)
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"true"}, Dir: "/nonexistent/petty-dir"})
	if err == nil || !strings.Contains(err.Error(), "working directory") || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Exec in a missing directory = %v, want a working-directory error that is not fs.ErrNotExist", err)
	}
}
