package webhook

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSecretWhitespaceIsNotPartOfTheKey(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := SignHMACSHA256("s3cr3t", body)
	// A secret read with ${file:...} from a file ending in a newline.
	assert.True(t, ValidHMACSHA256("s3cr3t\n", body, sig))
	assert.True(t, ValidHMACSHA256("  s3cr3t \r\n", body, sig))
	assert.False(t, ValidHMACSHA256("s3cr3", body, sig))
	assert.True(t, EqualToken("tok\n", "tok"))
	assert.False(t, EqualToken("tok\n", "tok\n"), "the presented token is compared as sent")

	c := SecretConfig{Secret: " \n"}
	assert.ErrorContains(t, c.Check(), "secret: is only whitespace")
}
