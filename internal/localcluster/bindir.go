package localcluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	modulePath = "github.com/otelcol-dora/dorareceiver"
	// binDirEnv overrides where the control-plane binaries are looked up.
	binDirEnv = "DORA_TOOLS_BIN"
)

// Binary names, as `make tools` builds them into .tools/bin.
const (
	etcdBin              = "etcd"
	apiServerBin         = "kube-apiserver"
	controllerManagerBin = "kube-controller-manager"
)

// BinDir returns the directory holding etcd, kube-apiserver and
// kube-controller-manager: $DORA_TOOLS_BIN when set, else .tools/bin at the
// root of this module, found by walking up from the working directory (tests
// run in their package's directory, `go run` wherever it is invoked).
func BinDir() (string, error) {
	if dir := os.Getenv(binDirEnv); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isModuleRoot(dir) {
			return filepath.Join(dir, ".tools", "bin"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("localcluster: no go.mod for %s above %s; run from inside the repository or set %s (binaries are built by `make tools`)", modulePath, wd, binDirEnv)
		}
	}
}

// isModuleRoot reports whether dir holds the go.mod of this module, so a
// nested helper module (such as tools/kube) is walked past.
func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}

// binary returns the path of the named binary in dir, or an error telling the
// user how to build it.
func binary(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("localcluster: %s not found in %s: run `make tools` to build the control-plane binaries (or set %s)", name, dir, binDirEnv)
	case err != nil:
		return "", fmt.Errorf("localcluster: %w", err)
	case info.IsDir() || info.Mode()&0o111 == 0:
		return "", fmt.Errorf("localcluster: %s is not an executable file: run `make tools` to rebuild it", path)
	}
	return path, nil
}
