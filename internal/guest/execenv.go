package guest

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pettyvm/petty/agent/wire"
)

// defaultLang is LANG for commands in a guest: C.UTF-8 exists in every
// Debian libc and needs no generated locale.
const defaultLang = "C.UTF-8"

// identity is who a command runs as.
type identity struct {
	cred *syscall.Credential // nil: the agent's own credentials
	name string              // login name, "" when unknown
	home string              // home directory, "" when unknown
}

// lookupIdentity resolves an ExecStart.User: a login name or a numeric uid
// of /etc/passwd, with its groups from /etc/group; "" is the agent's own
// user. An unknown user is an InvalidArgument status.
func lookupIdentity(name string) (identity, error) {
	if name == "" {
		id := identity{}
		if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
			id.name, id.home = u.Username, u.HomeDir
		} else if os.Getuid() == 0 {
			id.name, id.home = "root", "/root"
		}
		return id, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return identity{}, errorf(wire.InvalidArgument, "exec: unknown user %q: %v", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return identity{}, errorf(wire.InvalidArgument, "exec: user %q has a non-numeric uid or gid", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != cred.Gid {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return identity{cred: cred, name: u.Username, home: u.HomeDir}, nil
}

// commandEnv is a command's environment: the default (the agent's own, or
// when guestInit a clean one for id: the kernel gives init next to
// nothing) with id's HOME, USER and LOGNAME, then the request's entries,
// which win; PATH is always set.
func commandEnv(id identity, guestInit bool, extra []string) []string {
	var base []string
	if guestInit {
		base = []string{"PATH=" + defaultPath, "LANG=" + defaultLang}
	} else {
		base = os.Environ()
	}
	if id.home != "" {
		base = append(base, "HOME="+id.home)
	}
	if id.name != "" {
		base = append(base, "USER="+id.name, "LOGNAME="+id.name)
	}
	env := mergeEnv(base, extra)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}

// mergeEnv returns base with the entries of over added, an entry replacing
// the earlier one of the same key in place.
func mergeEnv(base, over []string) []string {
	var out []string
	at := map[string]int{}
	for _, kv := range slices.Concat(base, over) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// commandDir is a command's working directory: the requested one, else in
// a guest the user's home when it is a directory, else / (the agent's
// own otherwise).
func commandDir(dir string, id identity, guestInit bool) string {
	if dir != "" || !guestInit {
		return dir
	}
	if fi, err := os.Stat(id.home); id.home != "" && err == nil && fi.IsDir() {
		return id.home
	}
	return "/"
}
