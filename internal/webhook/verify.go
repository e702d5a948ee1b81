package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-dora/dorareceiver/internal/jsonscan"
)

// SecretConfig is the shared secret of a source that signs or
// authenticates its deliveries. A source with a secret option refuses to
// start without one unless insecure_skip_verify says so explicitly.
type SecretConfig struct {
	Secret             configopaque.String `mapstructure:"secret"`
	InsecureSkipVerify bool                `mapstructure:"insecure_skip_verify"`
}

// Check requires a secret unless verification is explicitly off. Sources
// call it from their Validate; it is not named Validate so that the
// collector's config validation does not run it a second time on the
// squashed field (and print the error twice).
func (c *SecretConfig) Check() error {
	if c.Secret == "" && !c.InsecureSkipVerify {
		return errors.New("secret: required to verify deliveries (set insecure_skip_verify: true to accept unsigned deliveries)")
	}
	if c.Secret != "" && len(Key(c.Secret)) == 0 {
		return errors.New("secret: is only whitespace (is the secret file empty?)")
	}
	return nil
}

// Verify reports whether deliveries must be checked.
func (c *SecretConfig) Verify() bool { return !c.InsecureSkipVerify || c.Secret != "" }

// Insecure reports whether the source accepts unverified deliveries (no
// secret, and insecure_skip_verify says so).
func (c *SecretConfig) Insecure() bool { return !c.Verify() }

// TokenConfig is the token a source's senders present as their credentials
// (an Authorization header). A source with a token option refuses to start
// without one unless insecure_skip_verify says so explicitly.
type TokenConfig struct {
	Token              configopaque.String `mapstructure:"token"`
	InsecureSkipVerify bool                `mapstructure:"insecure_skip_verify"`
}

// Check requires a token unless verification is explicitly off; sent says
// how the sender sends it, for the error. Not named Validate, as for
// SecretConfig.Check.
func (c *TokenConfig) Check(sent string) error {
	if c.Token == "" && !c.InsecureSkipVerify {
		return fmt.Errorf("token: required to authenticate deliveries (%s; set insecure_skip_verify: true to accept unauthenticated deliveries)", sent)
	}
	return nil
}

// Verify reports whether deliveries must be authenticated.
func (c *TokenConfig) Verify() bool { return !c.InsecureSkipVerify || c.Token != "" }

// Insecure reports whether the source accepts unauthenticated deliveries
// (no token, and insecure_skip_verify says so).
func (c *TokenConfig) Insecure() bool { return !c.Verify() }

// Equal compares a presented token with the configured one in constant
// time (EqualToken).
func (c *TokenConfig) Equal(presented string) bool { return EqualToken(c.Token, presented) }

// ValidHMACSHA256 reports whether hexSignature is the HMAC-SHA256 of body
// under secret. The comparison takes constant time.
func ValidHMACSHA256(secret configopaque.String, body []byte, hexSignature string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(hexSignature))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, Key(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Key is a configured secret or token as it is used: without leading or
// trailing whitespace. The collector's file provider keeps a file's content
// verbatim, so ${file:...} on a secret file ending in a newline (as editors
// and `echo` write it) would otherwise make every signature mismatch.
func Key(secret configopaque.String) []byte {
	return []byte(strings.TrimSpace(string(secret)))
}

// HMACSHA256 checks HMAC-SHA256 signatures under one secret. It keeps its
// keyed hash states in a pool: hmac.New costs five allocations and two
// SHA-256 key blocks per delivery, Reset costs none.
type HMACSHA256 struct {
	pool sync.Pool
}

type hmacState struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewHMACSHA256 returns the checker for secret.
func NewHMACSHA256(secret configopaque.String) *HMACSHA256 {
	key := Key(secret)
	v := &HMACSHA256{}
	v.pool.New = func() any { return &hmacState{mac: hmac.New(sha256.New, key)} }
	return v
}

// Valid reports whether hexSignature is the HMAC-SHA256 of body, as
// ValidHMACSHA256 does; the comparison takes constant time.
func (v *HMACSHA256) Valid(body []byte, hexSignature string) bool {
	hexSignature = strings.TrimSpace(hexSignature)
	var want [sha256.Size]byte
	if len(hexSignature) != 2*len(want) {
		return false // the length of a signature is not secret
	}
	for i := range want {
		hi, ok1 := unhex(hexSignature[2*i])
		lo, ok2 := unhex(hexSignature[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		want[i] = hi<<4 | lo
	}
	st := v.pool.Get().(*hmacState)
	st.mac.Reset()
	st.mac.Write(body)
	st.mac.Sum(st.sum[:0])
	ok := subtle.ConstantTimeCompare(want[:], st.sum[:]) == 1
	v.pool.Put(st)
	return ok
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// SignHMACSHA256 returns the hex HMAC-SHA256 of body, for tests and for
// documentation examples.
func SignHMACSHA256(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckAge is replay protection for sources whose deliveries carry a
// signed time (what names it in the answer: a header or a body field). A
// captured delivery sent again later still has a valid signature; it is
// refused when at is more than maxAge before the moment it was received,
// or more than maxAge after it (a sender's clock that far ahead is as
// suspicious, and would otherwise extend the window). maxAge 0 is off.
func CheckAge(what string, at, received time.Time, maxAge time.Duration) error {
	if maxAge <= 0 || received.IsZero() {
		return nil
	}
	// Times are compared, not subtracted: received.Sub(at) saturates 292
	// years away, and the negation of the saturated minimum overflows, so a
	// far-future time passed the check.
	switch {
	case at.Before(received.Add(-maxAge)):
		return BadRequest("delivery older than max_age: %s %s is %s before it was received (max_age %s)",
			what, at.Format(time.RFC3339), describeGap(received, at), maxAge)
	case at.After(received.Add(maxAge)):
		return BadRequest("delivery from the future: %s %s is %s after it was received (max_age %s; is the sender's clock right?)",
			what, at.Format(time.RFC3339), describeGap(at, received), maxAge)
	}
	return nil
}

// describeGap is later - earlier rounded to the second, or "more than 290
// years" where a Duration cannot hold it.
func describeGap(later, earlier time.Time) string {
	if later.After(earlier.Add(290 * 365 * 24 * time.Hour)) {
		return "more than 290 years"
	}
	return later.Sub(earlier).Round(time.Second).String()
}

// EqualToken compares a presented token with the configured one in
// constant time (for equal lengths; the length itself is not secret).
func EqualToken(configured configopaque.String, presented string) bool {
	return subtle.ConstantTimeCompare(Key(configured), []byte(presented)) == 1
}

// BearerToken returns the token of an "Authorization: Bearer x" header.
func BearerToken(authorization string) string {
	const prefix = "bearer "
	if len(authorization) > len(prefix) && strings.EqualFold(authorization[:len(prefix)], prefix) {
		return strings.TrimSpace(authorization[len(prefix):])
	}
	return ""
}

// DecodeJSON decodes body into v, ignoring unknown fields. Its errors are
// BadRequest errors that say what is wrong and where.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return BadRequest("empty body")
	}
	if err := jsonscan.CheckDepth(body, jsonscan.MaxDepth); err != nil {
		return BadRequest("%s", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return BadRequest("malformed JSON at byte %d: %v", syn.Offset, syn)
		case errors.As(err, &typ):
			return BadRequest("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		default:
			return BadRequest("malformed JSON: %v", err)
		}
	}
	return nil
}

// Required returns a BadRequest naming the first empty field, for payload
// validation: Required("deployment.environment", env, "deployment.sha", sha).
func Required(nameValues ...string) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if strings.TrimSpace(nameValues[i+1]) == "" {
			return BadRequest("missing required field %q", nameValues[i])
		}
	}
	return nil
}
