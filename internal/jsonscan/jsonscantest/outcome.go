// Package jsonscantest compares two JSON readers' refusals of one body by
// what the sender sees, for the differential tests of the scanner against
// encoding/json.
package jsonscantest

import (
	"fmt"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Outcome is what a sender learns from err: accepted (nil), or its HTTP
// status with the class of the refusal: "malformed JSON" for a syntax error
// (the byte offset and the wording are the JSON implementation's, and
// differ between encoding/json v1 and v2), the field named by a type error,
// (its path without array indices, which encoding/json v2 writes and v1
// does not), or the whole message for the receiver's own refusals (an empty body, too
// deep, a required field).
func Outcome(err error) string {
	if err == nil {
		return "accepted"
	}
	status := fmt.Sprintf("status %d", webhook.StatusOf(err))
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "malformed JSON"):
		return status + ": malformed JSON"
	case strings.HasPrefix(msg, `field "`):
		field, _, _ := strings.Cut(strings.TrimPrefix(msg, `field "`), `"`)
		return status + `: field "` + fieldPath(field) + `" has the wrong type`
	}
	return status + ": " + msg
}

// fieldPath drops the array indices of a field path: commits.0.added.0 is
// commits.added.
func fieldPath(p string) string {
	parts := strings.Split(p, ".")
	kept := parts[:0]
	for _, part := range parts {
		if strings.Trim(part, "0123456789") != "" || part == "" {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, ".")
}
