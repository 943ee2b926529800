package e2bserver

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"
)

func TestBasicUser(t *testing.T) {
	b64 := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		auth, want string
		err        bool
	}{
		{"", "user", false},
		{b64("user:"), "user", false},
		{b64("root:"), "root", false},
		{b64("root"), "root", false},
		{b64("mallory:"), "", true},
		{"Bearer x", "", true},
		{"Basic !!!", "", true},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.auth != "" {
			h.Set("Authorization", tt.auth)
		}
		u, err := basicUser(h)
		if (err != nil) != tt.err || u.name != tt.want {
			t.Errorf("basicUser(%q) = %+v, %v; want %q (error %v)", tt.auth, u, err, tt.want, tt.err)
		}
	}
}

func TestUserAbs(t *testing.T) {
	u, _ := lookupUser("")
	r, _ := lookupUser("root")
	tests := []struct {
		u       user
		in, out string
	}{
		{u, "", "/home/user"},
		{u, "a/b.txt", "/home/user/a/b.txt"},
		{u, "~/x", "/home/user/x"},
		{u, "/etc/../tmp/x", "/tmp/x"},
		{r, "x", "/root/x"},
		{r, "~", "/root"},
	}
	for _, tt := range tests {
		if got := tt.u.abs(tt.in); got != tt.out {
			t.Errorf("%s.abs(%q) = %q, want %q", tt.u.name, tt.in, got, tt.out)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{created: time.Date(2026, 11, 30, 23, 0, 0, 123456789, time.UTC), id: "abc def"}
	got, err := parseCursor(c.String())
	if err != nil || !got.created.Equal(c.created) || got.id != c.id {
		t.Errorf("parseCursor(%q) = %+v, %v", c.String(), got, err)
	}
	for _, bad := range []string{"%", base64.RawURLEncoding.EncodeToString([]byte("nospace")), base64.RawURLEncoding.EncodeToString([]byte("notatime id"))} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) did not fail", bad)
		}
	}
}
