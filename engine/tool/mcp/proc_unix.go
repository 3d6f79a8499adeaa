//go:build unix

package mcp

import (
	"os/exec"
	"syscall"
)

// newProcessGroup puts the server in a process group of its own, so that
// stopping it reaches the processes it started (npx runs the server as its
// child), and so that a Ctrl-C in the engine's terminal does not kill servers
// behind the engine's back: the engine stops them itself.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminateProcessGroup asks every process of the server's group to exit.
func terminateProcessGroup(cmd *exec.Cmd) { signalGroup(cmd, syscall.SIGTERM) }

// killProcessGroup kills every process left in the server's group. After the
// server itself exited, any process remaining in the group is an orphan that
// would otherwise keep running.
func killProcessGroup(cmd *exec.Cmd) { signalGroup(cmd, syscall.SIGKILL) }

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig) // ESRCH: nothing left
	}
}
