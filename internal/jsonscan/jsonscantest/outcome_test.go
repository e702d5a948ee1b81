package jsonscantest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

func TestOutcome(t *testing.T) {
	assert.Equal(t, "accepted", Outcome(nil))
	// What the JSON implementation words its own way is one outcome.
	assert.Equal(t,
		Outcome(webhook.BadRequest("malformed JSON at byte 3: invalid character 'x' after top-level value")),
		Outcome(webhook.BadRequest("malformed JSON at byte 4: invalid character 'x' after top-level value")))
	assert.Equal(t,
		Outcome(webhook.BadRequest(`field "commits.added": expected []string, got JSON number`)),
		Outcome(webhook.BadRequest(`field "commits.0.added.0": expected string, got JSON number`)))
	// What the sender can act on is not.
	assert.NotEqual(t,
		Outcome(webhook.BadRequest(`field "commits.added": expected string, got JSON number`)),
		Outcome(webhook.BadRequest(`field "commits.removed": expected string, got JSON number`)))
	assert.NotEqual(t, Outcome(webhook.BadRequest("empty body")), Outcome(webhook.Unauthorized("empty body")))
	assert.NotEqual(t, Outcome(webhook.BadRequest("empty body")), Outcome(webhook.BadRequest("malformed JSON: x")))
	// A plain error is answered 400, as a BadRequest is.
	assert.Equal(t, Outcome(webhook.BadRequest("empty body")), Outcome(errors.New("empty body")))
}
