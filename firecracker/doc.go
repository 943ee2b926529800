// Package firecracker is a small typed client for the Firecracker v1.16 HTTP
// API, spoken over the unix socket that `firecracker --api-sock` listens on.
//
// The client frames every request with Content-Length (Firecracker's HTTP
// server does not support chunked bodies and ignores `Connection: close`),
// reuses its keep-alive connection between calls and bounds every call with a
// per-call timeout. Non-2xx answers are returned as *APIError carrying
// Firecracker's fault_message.
//
// The model types mirror the definitions of the API specification with their
// exact JSON names; optional fields are omitted when zero. Config is the JSON
// document read by `firecracker --config-file`.
package firecracker
