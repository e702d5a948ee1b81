package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the child if this command dies first, so no server
// outlives a crashed load run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
