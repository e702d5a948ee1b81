// Package webhooktest holds checks that every source's tests share.
package webhooktest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// CheckEventsOwnTheirData parses each request in turn, as the server does
// with its reused body buffers and the providers with their pooled scratch
// space, and fails if the events of an earlier request change afterwards:
// after each parse the request's body is overwritten, and the requests
// after it reuse whatever the provider pools. An event that kept a string
// or slice pointing into a body or a pooled buffer would change, so a
// provider can not keep what it must copy (webhook.Request.Body). Run it
// under the race detector (make race) as well: a kept reference then also
// shows as a race with the next delivery's writes.
func CheckEventsOwnTheirData(t testing.TB, p webhook.Provider, reqs ...*webhook.Request) {
	t.Helper()
	type parsed struct {
		res  webhook.Result
		seen string
	}
	var all []parsed
	for i, req := range reqs {
		res, err := p.Parse(req)
		require.NoError(t, err, "request %d", i)
		require.NotEmpty(t, res.Events, "request %d: a check on no events checks nothing", i)
		all = append(all, parsed{res: res, seen: fmt.Sprintf("%#v", res.Events)})
		for j := range req.Body {
			req.Body[j] = 0xff
		}
		for k, earlier := range all {
			require.Equal(t, earlier.seen, fmt.Sprintf("%#v", earlier.res.Events),
				"the events of request %d changed after request %d's body was overwritten and reused", k, i)
		}
	}
}
