// Package sandbox runs many throwaway VMs ("sandboxes") for AI agents: a
// Manager creates, finds, lists and destroys them within limits (a maximum
// count, a share of the host's memory), destroys each one when its timeout
// expires, and destroys all of them on Close. A Sandbox runs commands in its
// guest through the guest agent (streamed or collected with an output cap),
// keeps background processes with their output in bounded buffers, and
// reads, writes, lists, stats, moves and removes files.
//
// The exec model:
//   - A timeout (ExecOptions.Timeout, enforced by the agent) terminates the
//     command's whole process group in the guest: SIGTERM, then SIGKILL after
//     a grace (ExecOptions.KillGrace, default 2 s) to whatever is left of the
//     group, children that outlived the leader included; the call returns
//     once the group is gone. Cancelling the call's context kills the group
//     with SIGKILL at once.
//   - Output collected by Run is capped (RunOptions.MaxOutput) and the cut is
//     reported with Result.Truncated; the agent stops sending beyond the cap.
//   - RunCode hands code to interpreters through a file in the guest, never
//     argv.
//   - Calls on one Sandbox run concurrently: they share one agent connection,
//     which multiplexes them.
//   - Commands run as root unless ExecOptions.User (or StartOptions.User)
//     names another user of the guest.
//
// Background processes (Start) keep their output in bounded buffers
// (Process), take signals to their process group (Signal, Kill), may have a
// standard input (StartOptions.Stdin, WriteStdin, CloseStdin), and have
// their live output followed (Follow) by any number of bounded followers.
package sandbox
