package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNameservers(t *testing.T) {
	tests := []struct {
		name, conf string
		want       []string
	}{
		{"plain", "nameserver 10.0.0.2\nnameserver 2001:db8::1\n", []string{"10.0.0.2", "2001:db8::1"}},
		{"systemd stub", "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", nil},
		{"mixed", "nameserver ::1\nnameserver 192.0.2.1 # comment\nsearch example.org\n", []string{"192.0.2.1"}},
		{"at most three", "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
		{"junk", "nameserver\nnameserver bogus\nnameserver 0.0.0.0\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseNameservers(strings.NewReader(tt.conf))); diff != "" {
				t.Errorf("parseNameservers (-want +got):\n%s", diff)
			}
		})
	}
}
