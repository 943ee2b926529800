package firecracker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// maxFaultBytes bounds the raw body kept as FaultMessage when an error answer
// is not the JSON Error object of the API.
const maxFaultBytes = 512

// APIError is returned, as *APIError, for every answer with a non-2xx status.
type APIError struct {
	// Op is the method and path of the request, e.g. "PUT /drives/rootfs".
	Op string
	// StatusCode is the HTTP status code of the answer.
	StatusCode int
	// FaultMessage is the fault_message of the answer, or its raw body
	// (truncated) when the body is not the API's JSON Error object.
	FaultMessage string
}

// Error returns e.g. "firecracker: PUT /drives/rootfs: 400 Bad Request: <fault>".
func (e *APIError) Error() string {
	s := fmt.Sprintf("firecracker: %s: %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.FaultMessage != "" {
		s += ": " + e.FaultMessage
	}
	return s
}

// newAPIError builds the *APIError for an answer with the given status code
// and body.
func newAPIError(op string, code int, body []byte) *APIError {
	e := &APIError{Op: op, StatusCode: code}
	var fault struct {
		FaultMessage *string `json:"fault_message"`
	}
	if err := json.Unmarshal(body, &fault); err == nil && fault.FaultMessage != nil {
		e.FaultMessage = *fault.FaultMessage
		return e
	}
	e.FaultMessage = truncate(strings.TrimSpace(string(body)), maxFaultBytes)
	return e
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence,
// marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
