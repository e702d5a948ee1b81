// Package gitpush holds what the Git host sources (GitHub, GitLab) share
// to read pushes and merges: commit ids, commit lists and their files,
// RFC 3339 times, and the revert and hotfix signals.
package gitpush

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// GitRevertPattern matches the line git revert writes into a revert's
// message ("This reverts commit <sha>." and, for a merge commit, "This
// reverts commit <sha>, reversing changes made to <sha>.").
const GitRevertPattern = `This reverts commit ([0-9a-fA-F]{40,64})`

// ChangeSignalsConfig says how a Git host's pushes and merges mark reverts
// and hotfixes. It is squashed into the GitHub and GitLab configs.
type ChangeSignalsConfig struct {
	// RevertPatterns are regular expressions (Go syntax) matched against
	// each pushed commit's message and each merged pull or merge request's
	// title and description; the first capture group of the first match
	// names what is reverted: a full commit SHA, or a pull or merge request
	// reference. Empty: reverts are not read.
	RevertPatterns []string `mapstructure:"revert_patterns"`
	// HotfixLabels: a merged pull or merge request with one of these labels
	// (case-insensitive) is a hotfix.
	HotfixLabels []string `mapstructure:"hotfix_labels"`
	// HotfixBranches: a merged pull or merge request whose source branch
	// matches one of these shell patterns ("hotfix/*") is a hotfix.
	HotfixBranches []string `mapstructure:"hotfix_branches"`
}

// Check validates the settings; errors name the key.
func (c ChangeSignalsConfig) Check() error {
	var errs []error
	for i, p := range c.RevertPatterns {
		re, err := regexp.Compile(p)
		switch {
		case strings.TrimSpace(p) == "":
			errs = append(errs, fmt.Errorf("revert_patterns[%d]: empty pattern", i))
		case err != nil:
			errs = append(errs, fmt.Errorf("revert_patterns[%d]: %q is not a valid regular expression: %w", i, p, err))
		case re.NumSubexp() < 1:
			errs = append(errs, fmt.Errorf("revert_patterns[%d]: %q has no capture group for the reverted commit or change", i, p))
		}
	}
	for i, l := range c.HotfixLabels {
		if strings.TrimSpace(l) == "" {
			errs = append(errs, fmt.Errorf("hotfix_labels[%d]: empty label", i))
		}
	}
	for i, b := range c.HotfixBranches {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("hotfix_branches[%d]: empty pattern", i))
		} else if _, err := path.Match(b, ""); err != nil {
			errs = append(errs, fmt.Errorf("hotfix_branches[%d]: %q is not a valid pattern: %w", i, b, err))
		}
	}
	return errors.Join(errs...)
}

// ChangeSignals is a checked ChangeSignalsConfig, ready to use.
type ChangeSignals struct {
	reverts  []*regexp.Regexp
	prefixes [][]byte // each revert pattern's literal prefix
	labels   []string
	branches []string
}

// NewChangeSignals compiles c, which should have passed Check (invalid
// entries are left out).
func NewChangeSignals(c ChangeSignalsConfig) ChangeSignals {
	var s ChangeSignals
	for _, p := range c.RevertPatterns {
		if re, err := regexp.Compile(p); err == nil && re.NumSubexp() >= 1 {
			prefix, _ := re.LiteralPrefix()
			s.reverts = append(s.reverts, re)
			s.prefixes = append(s.prefixes, []byte(prefix))
		}
	}
	for _, l := range c.HotfixLabels {
		if l = strings.TrimSpace(l); l != "" {
			s.labels = append(s.labels, l)
		}
	}
	for _, b := range c.HotfixBranches {
		if _, err := path.Match(b, ""); err == nil && strings.TrimSpace(b) != "" {
			s.branches = append(s.branches, b)
		}
	}
	return s
}

// ReadsReverts reports whether any revert pattern is set: without one,
// push decoders need not read commit messages.
func (s *ChangeSignals) ReadsReverts() bool { return len(s.reverts) > 0 }

// Reverted returns the first capture group of the first revert pattern
// that matches text, "" when none does.
func (s *ChangeSignals) Reverted(text []byte) string {
	for i, re := range s.reverts {
		// Most messages revert nothing: a pattern's literal prefix, when it
		// has one, rules them out for a fraction of the regexp's cost.
		if p := s.prefixes[i]; len(p) > 0 && !bytes.Contains(text, p) {
			continue
		}
		if m := re.FindSubmatchIndex(text); m != nil && m[2] >= 0 {
			return string(text[m[2]:m[3]])
		}
	}
	return ""
}

// HotfixLabel reports whether a label is one of the hotfix labels.
func (s *ChangeSignals) HotfixLabel(label string) bool {
	for _, l := range s.labels {
		if strings.EqualFold(l, label) {
			return true
		}
	}
	return false
}

// HotfixBranch reports whether a source branch matches a hotfix pattern.
func (s *ChangeSignals) HotfixBranch(branch string) bool {
	for _, p := range s.branches {
		if ok, _ := path.Match(p, branch); ok {
			return true
		}
	}
	return false
}

// RevertTarget turns what a revert pattern captured in repository repo into
// the reverted commit, or the ChangeID of the reverted pull or merge
// request: a reference "[owner/repo]<sep>N" names one of repo, or of the
// repository it writes, and changeID names it as the source's ChangeMerged
// events do.
func RevertTarget(repo, captured string, sep byte, changeID func(repo string, number int64) string) (reverts, change string) {
	if captured == "" {
		return "", ""
	}
	if IsSHA(captured) {
		return strings.ToLower(captured), ""
	}
	r, n, ok := ChangeRef(captured, sep)
	if !ok {
		return "", ""
	}
	if r == "" {
		r = repo
	}
	return "", changeID(r, n)
}

// ChangeRef reads a pull or merge request reference, "[owner/repo]<sep>N"
// (GitHub writes "acme/api#42", GitLab "!42" or "group/project!42"), and
// returns its repository ("" for the same one) and number.
func ChangeRef(ref string, sep byte) (repo string, number int64, ok bool) {
	i := strings.LastIndexByte(ref, sep)
	if i < 0 || i == len(ref)-1 {
		return "", 0, false
	}
	for _, c := range ref[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		number = number*10 + int64(c-'0')
		if number > 1<<40 {
			return "", 0, false
		}
	}
	return ref[:i], number, number > 0
}
