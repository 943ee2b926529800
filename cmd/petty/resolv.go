package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
)

// The host's resolver configurations whose name servers a VM with a
// network gets (petty.dns=, see internal/guest): systemd-resolved's
// upstream list after the usual file, whose 127.0.0.53 a guest cannot
// reach.
var hostResolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// maxNameservers is glibc's MAXNS.
const maxNameservers = 3

// hostNameservers returns the host's name servers that a guest can reach
// through its own network: the first of hostResolvConfs naming any that is
// not a loopback address; none when there is no such file.
func hostNameservers() []string {
	for _, p := range hostResolvConfs {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		ns := parseNameservers(f)
		f.Close()
		if len(ns) > 0 {
			return ns
		}
	}
	return nil
}

// parseNameservers returns the addresses of resolv.conf's nameserver lines,
// loopback ones (a resolver on the host itself) left out, at most
// maxNameservers.
func parseNameservers(r io.Reader) []string {
	var ns []string
	sc := bufio.NewScanner(r)
	for sc.Scan() && len(ns) < maxNameservers {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if ip := net.ParseIP(f[1]); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			ns = append(ns, ip.String())
		}
	}
	return ns
}
