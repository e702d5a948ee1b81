package gitpush

import "slices"

// CommitPaths joins the files a commit added, removed and modified (as Git
// hosts list them in push payloads) into Event.Paths: without empty or
// repeated entries, nil when there are none (unknown, not "touched
// nothing"). A list truncated by the host (limit > 0 files or more in all)
// is nil too: it may leave out the files that decide which services of a
// monorepo the commit belongs to.
func CommitPaths(limit int, lists ...[]string) []string {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	if n == 0 || (limit > 0 && n >= limit) {
		return nil
	}
	out := make([]string, 0, n)
	// A commit lists a few files: a linear search beats building a set.
	var seen map[string]bool
	if n > 32 {
		seen = make(map[string]bool, n)
	}
	for _, l := range lists {
		for _, p := range l {
			if p == "" {
				continue
			}
			if seen != nil {
				if seen[p] {
					continue
				}
				seen[p] = true
			} else if slices.Contains(out, p) {
				continue
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
