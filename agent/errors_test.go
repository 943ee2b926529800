package agent

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/pettyvm/petty/agent/wire"
)

func TestRemoteErrorIs(t *testing.T) {
	for _, tt := range []struct {
		code wire.Code
		want error
	}{
		{wire.NotFound, fs.ErrNotExist},
		{wire.PermissionDenied, fs.ErrPermission},
		{wire.AlreadyExists, fs.ErrExist},
		{wire.InvalidArgument, fs.ErrInvalid},
		{wire.Unimplemented, errors.ErrUnsupported},
	} {
		err := pathError("open", "/x", statusError(wire.Status{Code: tt.code, Message: "m"}))
		if !errors.Is(err, tt.want) {
			t.Errorf("%v: errors.Is(%v, %v) = false", tt.code, err, tt.want)
		}
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != tt.code {
			t.Errorf("%v: errors.As RemoteError = %v", tt.code, re)
		}
	}
	if statusError(wire.Status{}) != nil {
		t.Error("statusError(OK) != nil")
	}
}
