package localcluster

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child if its parent dies, so a
// crashed or killed test binary does not leave an apiserver behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
