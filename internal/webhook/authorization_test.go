package webhook

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckAuthorization(t *testing.T) {
	cfg := TokenConfig{Token: "s3cret-token\n"} // as read from a file
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	tests := map[string]struct {
		custom string
		header map[string]string
		want   string // "" = accepted
	}{
		"bearer":                           {"", map[string]string{"Authorization": "Bearer s3cret-token"}, ""},
		"scheme in any case":               {"", map[string]string{"Authorization": "bearer s3cret-token"}, ""},
		"another scheme":                   {"", map[string]string{"Authorization": "Token s3cret-token"}, ""},
		"basic, any user":                  {"", map[string]string{"Authorization": basic("grafana", "s3cret-token")}, ""},
		"basic, password with a colon":     {"", map[string]string{"Authorization": basic("u", "s3cret:token")}, "basic auth password"},
		"custom header":                    {"X-Token", map[string]string{"X-Token": "s3cret-token"}, ""},
		"custom header set, Authorization": {"X-Token", map[string]string{"Authorization": "Bearer s3cret-token"}, ""},
		"custom header wrong, Authorization right": {"X-Token", map[string]string{"X-Token": "nope", "Authorization": "Bearer s3cret-token"},
			"the X-Token header is not the configured token"},
		"missing":                {"", nil, "missing Authorization header (how)"},
		"missing, custom header": {"X-Token", nil, "missing X-Token or Authorization header (how)"},
		"wrong":                  {"", map[string]string{"Authorization": "Bearer s3cret-tokeN"}, "not the configured token"},
		"prefix":                 {"", map[string]string{"Authorization": "Bearer s3cret"}, "not the configured token"},
		"no credentials":         {"", map[string]string{"Authorization": "Bearer"}, "no credentials"},
		"basic not base64":       {"", map[string]string{"Authorization": "Basic !!"}, "not base64"},
		"basic without colon":    {"", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("s3cret-token"))}, "basic auth password"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			err := cfg.CheckAuthorization(h, tt.custom, "how")
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			var herr *Error
			require.ErrorAs(t, err, &herr)
			assert.Equal(t, http.StatusUnauthorized, herr.Status)
			assert.Contains(t, herr.Message, tt.want)
		})
	}
}
