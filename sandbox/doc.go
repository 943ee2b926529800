// Package sandbox runs many throwaway VMs ("sandboxes") for AI agents: a
// Manager creates, finds, lists and destroys them within limits (a maximum
// count, a share of the host's memory), destroys each one when its timeout
// expires, and destroys all of them on Close. A Sandbox runs commands in its
// guest through the guest agent (streamed or collected with an output cap),
// keeps background processes with their output in bounded buffers, and
// reads, writes, lists, stats, moves and removes files.
//
// The exec model:
//   - A timeout (Cmd.Timeout, enforced by the agent) kills the command's whole
//     process group in the guest with SIGKILL; so does cancelling the call's
//     context. (The agent has no SIGTERM grace period: processes get SIGKILL at
//     once.)
//   - Output collected by Run is capped (RunOptions.MaxOutput) and the cut is
//     reported with Result.Truncated; the agent stops sending beyond the cap.
//   - RunCode hands code to interpreters through a file in the guest, never
//     argv.
//   - Calls on one Sandbox run concurrently: they share one agent connection,
//     which multiplexes them.
//
// The guest agent has no notion of users: ExecOptions.User is refused with
// ErrUnsupported unless empty or "root".
package sandbox
