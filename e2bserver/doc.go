// Package e2bserver serves petty's sandboxes over E2B's API, so that E2B's
// own SDKs (npm and Python `e2b`), unchanged, run their sandboxes on petty
// when pointed at it with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY.
//
// It is a thin adapter over a sandbox.Manager, like package mcpserver:
//   - the control plane: REST and JSON under /sandboxes and /v2/sandboxes,
//     authenticated by the X-API-Key header (the server's key);
//   - the in-sandbox API ("envd"): the Connect services process.Process and
//     filesystem.Filesystem (generated from the .proto files in
//     e2b/envdpb), GET and POST /files and GET /health, for the sandbox the
//     E2b-Sandbox-Id header names (the SDKs' single-URL mode), authenticated
//     by that sandbox's envdAccessToken in X-Access-Token.
//
// Templates are petty images: "base" is the default image. Commands run as
// the user E2B selects (Basic authentication's user name, or the username
// query parameter of /files): "user" by default, or "root".
package e2bserver
