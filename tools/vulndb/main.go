// Command vulndb writes the Go vulnerability database in its v1 layout
// (https://go.dev/security/vuln/database#api) from the OSV entries that a
// golang.org/x/vulndb module version carries in data/osv:
//
//	index/db.json       {"modified": latest modified time of any entry}
//	index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}]
//	index/vulns.json    [{"id", "modified", "aliases"}]
//	ID/<id>.json        the OSV entry, unchanged
//
// The module comes from the Go module proxy (go mod download), as vuln.go.dev
// cannot be reached here. Usage:
//
//	vulndb -module golang.org/x/vulndb@VERSION -out DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// entry is the part of an OSV entry the indexes need.
type entry struct {
	ID       string     `json:"id"`
	Modified time.Time  `json:"modified"`
	Aliases  []string   `json:"aliases,omitempty"`
	Affected []affected `json:"affected"`
}

type affected struct {
	Module struct {
		Path string `json:"name"`
	} `json:"package"`
	Ranges []struct {
		Type   string `json:"type"`
		Events []struct {
			Introduced string `json:"introduced,omitempty"`
			Fixed      string `json:"fixed,omitempty"`
		} `json:"events"`
	} `json:"ranges"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

func main() {
	module := flag.String("module", "", "golang.org/x/vulndb@VERSION to read data/osv from")
	out := flag.String("out", "", "folder to write the database to (replaced)")
	flag.Parse()
	if *module == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*module, *out); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func run(module, out string) error {
	dir, published, err := download(module)
	if err != nil {
		return err
	}
	osvDir := filepath.Join(dir, "data", "osv")
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s has no OSV entries in data/osv", module)
	}
	// Write next to out, then swap, so a failed run leaves the old database.
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "ID"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "index"), 0o755); err != nil {
		return err
	}
	var dbModified time.Time
	modules := map[string]*moduleMeta{}
	var vulns []vulnMeta
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if e.ID+".json" != filepath.Base(f) {
			return fmt.Errorf("%s: holds entry %q", f, e.ID)
		}
		if e.Modified.IsZero() {
			// The repository's entries get their times when vuln.go.dev
			// publishes them; the module's commit time is the best bound.
			e.Modified = published
		}
		if e.Modified.After(dbModified) {
			dbModified = e.Modified
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := modules[a.Module.Path]
			if m == nil {
				m = &moduleMeta{Path: a.Module.Path, Vulns: []moduleVuln{}}
				modules[a.Module.Path] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFix(a)})
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return err
		}
	}
	modList := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		modList = append(modList, m)
	}
	sort.Slice(modList, func(i, j int) bool { return modList[i].Path < modList[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	for name, v := range map[string]any{
		"db.json":      map[string]time.Time{"modified": dbModified},
		"modules.json": modList,
		"vulns.json":   vulns,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "index", name), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("vulndb: %d entries, %d modules, modified %s, from %s\n", len(vulns), len(modList), dbModified.Format(time.RFC3339), module)
	return nil
}

// download fetches module from the module proxy and returns its folder and
// its version's time.
func download(module string) (string, time.Time, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var info struct{ Dir, Info, Error string }
	if jerr := json.Unmarshal(stdout.Bytes(), &info); jerr == nil && info.Error != "" {
		return "", time.Time{}, errors.New(info.Error)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s: %v: %s", module, err, strings.TrimSpace(stderr.String()))
	}
	if info.Dir == "" {
		return "", time.Time{}, fmt.Errorf("go mod download %s: no folder in %q", module, stdout.String())
	}
	var version struct{ Time time.Time }
	raw, err := os.ReadFile(info.Info)
	if err == nil {
		err = json.Unmarshal(raw, &version)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s: reading its .info: %v", module, err)
	}
	return info.Dir, version.Time.UTC(), nil
}

// latestFix is the latest fixed version of the SEMVER ranges, or "" when
// the vulnerability was introduced again after it (no fix then), as
// govulncheck's own index computes it. Versions have no "v" prefix.
func latestFix(a affected) string {
	var latest string
	for _, r := range a.Ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// less compares OSV versions ("1.2.3", no "v"); "" is the smallest.
func less(a, b string) bool {
	if a == "" {
		return b != ""
	}
	if b == "" {
		return false
	}
	return semver.Compare("v"+a, "v"+b) < 0
}
