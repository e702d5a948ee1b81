package gitpush

import (
	"bytes"
	"fmt"
	"strings"
)

// CommitSHA returns v, a full commit SHA (SHA-1 or SHA-256), in lower case,
// or an error naming field (answered 400).
func CommitSHA(field, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("missing required field %q", field)
	}
	if !IsSHA(v) {
		return "", fmt.Errorf("field %q: %q is not a full commit SHA", field, v)
	}
	return strings.ToLower(v), nil
}

// IsSHA reports whether v is a full SHA-1 or SHA-256 commit id in hex.
func IsSHA(v string) bool { return isSHA(v) }

// IsSHABytes is IsSHA for bytes (a SHA does not fit the 32 bytes that
// string(b) converts without allocating).
func IsSHABytes(v []byte) bool { return isSHA(v) }

func isSHA[T string | []byte](v T) bool {
	if len(v) != 40 && len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsZeroSHA reports the all-zero SHA Git uses for "no commit" (a created
// or deleted branch).
func IsZeroSHA(v string) bool {
	return (len(v) == 40 || len(v) == 64) && strings.Trim(v, "0") == ""
}

// IsZeroSHABytes is IsZeroSHA for bytes.
func IsZeroSHABytes(v []byte) bool {
	return (len(v) == 40 || len(v) == 64) && len(bytes.Trim(v, "0")) == 0
}
