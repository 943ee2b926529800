package e2bserver

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/pettyvm/petty/sandbox"
)

// apiError is the control plane's error body: {"code": 404, "message": …}.
// The SDKs compare the numeric code (code === 404).
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeJSON answers status with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers status with an apiError.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Code: status, Message: msg})
}

// statusOf maps a sandbox error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, sandbox.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, sandbox.ErrLimit):
		return http.StatusTooManyRequests
	case errors.Is(err, sandbox.ErrClosed):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
