package incidentio

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// secretPrefix starts Svix and Standard Webhooks signing secrets; the rest
// is the base64 key.
const secretPrefix = "whsec_"

// signingKey is the HMAC key of a signing secret: the base64 after whsec_,
// as incident.io shows it. Without the prefix the secret is read as Svix's
// libraries read it, base64, and taken as it is when it is not base64 (a
// key of another Standard Webhooks sender).
func signingKey(secret string) ([]byte, error) {
	b64, prefixed := strings.CutPrefix(secret, secretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	switch {
	case err != nil && prefixed:
		return nil, errors.New(`not a signing secret: after "whsec_" comes the base64 key, as incident.io's webhook settings show it`)
	case err != nil:
		key = []byte(secret)
	}
	if len(key) == 0 {
		return nil, errors.New("the signing secret's key is empty")
	}
	return key, nil
}

// verify checks the Standard Webhooks signature: any "v1,<base64>" of the
// space-separated webhook-signature list must be the HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>" (several during a secret
// rotation). Then the signed timestamp is checked against max_age.
func (p *Provider) verify(req *webhook.Request, msgID string) error {
	ts := headerOf(req, "webhook-timestamp", "svix-timestamp")
	sigs := headerOf(req, "webhook-signature", "svix-signature")
	switch {
	case msgID == "":
		return webhook.Unauthorized("missing webhook-id header (incident.io signs its webhooks with webhook-id, webhook-timestamp and webhook-signature)")
	case ts == "":
		return webhook.Unauthorized("missing webhook-timestamp header")
	case sigs == "":
		return webhook.Unauthorized("missing webhook-signature header")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return webhook.Unauthorized("the webhook-timestamp header %q is not Unix seconds", ts)
	}
	if p.key == nil {
		return webhook.Unauthorized("no usable signing secret is configured")
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(req.Body)
	want := mac.Sum(nil)
	matched, versioned := false, false
	for sig := range strings.FieldsSeq(sigs) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		if !ok {
			continue // another version (v1a: asymmetric signatures)
		}
		versioned = true
		got, err := base64.StdEncoding.DecodeString(b64)
		// Check them all, so the time taken does not say which one matched.
		if err == nil && hmac.Equal(got, want) {
			matched = true
		}
	}
	switch {
	case !versioned:
		return webhook.Unauthorized("webhook-signature holds no v1 signature")
	case !matched:
		return webhook.Unauthorized("no signature in webhook-signature matches the webhook-id, webhook-timestamp and body")
	}
	// The timestamp is signed: a replayed copy cannot move it.
	return webhook.CheckAge("webhook-timestamp", time.Unix(secs, 0).UTC(), req.Received, p.cfg.MaxAge)
}

// Sign returns the webhook-signature value Svix sends for a delivery, for
// tests and documentation examples.
func Sign(secret, msgID string, ts int64, body []byte) (string, error) {
	key, err := signingKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
