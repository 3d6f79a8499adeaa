//go:build unix

package mcp

import (
	"os/exec"
	"syscall"
)

// newProcessGroup puts the server in a process group of its own, so that
// killProcessGroup reaches the processes it started (npx runs the server as
// its child), and so that a Ctrl-C in the engine's terminal does not kill
// servers behind the engine's back: the engine stops them itself.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills whatever is left of the server's process group. It
// runs after the server itself exited, when any process remaining in the
// group is an orphan that would otherwise keep running.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH: nothing left
	}
}
