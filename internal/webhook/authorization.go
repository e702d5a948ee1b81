package webhook

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// CheckAuthorization checks the credentials of senders that send a token
// rather than a signature (Grafana's webhook contact point, Opsgenie's
// webhook integration): "Authorization: Bearer <token>" (any scheme's
// credentials, as Grafana's "Authentication Header Scheme" lets users pick
// one), "Authorization: Basic" with the token as the password (the user
// name is not checked: it is not secret), or, when customHeader is set, that
// header carrying the token itself. The comparison takes constant time.
// how says, in the 401 answer, how to configure the sender.
func (c *TokenConfig) CheckAuthorization(h http.Header, customHeader, how string) error {
	if customHeader != "" {
		if v := h.Get(customHeader); v != "" {
			if c.Equal(strings.TrimSpace(v)) {
				return nil
			}
			return Unauthorized("the %s header is not the configured token", customHeader)
		}
	}
	header := strings.TrimSpace(h.Get("Authorization"))
	if header == "" {
		if customHeader != "" {
			return Unauthorized("missing %s or Authorization header (%s)", customHeader, how)
		}
		return Unauthorized("missing Authorization header (%s)", how)
	}
	scheme, credentials, ok := strings.Cut(header, " ")
	credentials = strings.TrimSpace(credentials)
	if !ok || credentials == "" {
		return Unauthorized("the Authorization header has no credentials after its scheme")
	}
	if strings.EqualFold(scheme, "basic") {
		raw, err := base64.StdEncoding.DecodeString(credentials)
		if err != nil {
			return Unauthorized("the Authorization header's basic credentials are not base64")
		}
		_, password, ok := strings.Cut(string(raw), ":")
		if ok && c.Equal(password) {
			return nil
		}
		return Unauthorized("the basic auth password in the Authorization header is not the configured token")
	}
	if c.Equal(credentials) {
		return nil
	}
	return Unauthorized("the credentials in the Authorization header are not the configured token")
}
