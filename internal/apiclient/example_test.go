package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v93/github"
	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/time/rate"

	"github.com/otelcol-dora/dorareceiver/internal/apiclient"
	"github.com/otelcol-dora/dorareceiver/internal/history"
)

// The wiring of an importer: one polite client per source and run (its
// budget is the run's), the client library's own limits and retries off,
// a 401/403/404 turned into the SettingError naming the setting.
func ExampleNew() {
	hc := apiclient.New(apiclient.Options{
		Name:          "github",
		RequestBudget: 5000, // webhooks::github::history::request_budget
		Observe:       func(e apiclient.Event) { /* count e.Kind in the import's telemetry */ },
	})
	gh, err := github.NewClient(github.WithHTTPClient(hc), github.WithAuthToken("token from the history block"),
		github.WithDisableRateLimitCheck())
	if err != nil {
		return
	}
	_, resp, err := gh.Repositories.ListDeployments(context.Background(), "octocat", "example", nil)
	var r *http.Response
	if resp != nil {
		r = resp.Response
	}
	switch {
	case err == nil:
	case apiclient.AsSettingError("webhooks::github::history::token", r, err) != nil:
		// stop this source's import: return the SettingError
	case errors.Is(err, history.ErrBudgetSpent):
		// pause: resume from the saved cursor at the next run
	}

	// GitLab: no retries nor pacing of its own.
	gl, err := gitlab.NewClient("token", gitlab.WithHTTPClient(apiclient.New(apiclient.Options{Name: "gitlab"})),
		gitlab.WithoutRetries(), gitlab.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)))
	fmt.Println(gl != nil, err == nil)
}
