package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// The push-like event of each VCS source (issue 17): the same bytes to
// dora's path for the source, with the source's own headers, and to the
// floor, which reads them and checks an HMAC-SHA256 (X-Hub-Signature-256).

// vcsSource is one source's push, as the load generator sends it.
type vcsSource struct {
	name    string // the source's config key
	path    string // dora's path for it
	fixture string // the push fixture, relative to the module root
	// idField is the notification id in the body (Azure DevOps carries its
	// delivery id in the body, the others in a header).
	idField string
	header  func(secret, id string, body []byte) http.Header
}

var vcsSources = []vcsSource{
	{
		name: "bitbucket", path: "/webhooks/bitbucket", fixture: "internal/bitbucket/testdata/repo-push.json",
		header: func(secret, id string, body []byte) http.Header {
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set("X-Event-Key", "repo:push")
			h.Set("X-Request-UUID", id)
			h.Set("X-Hub-Signature", "sha256="+signHex(secret, body))
			return h
		},
	},
	{
		name: "bitbucket_dc", path: "/webhooks/bitbucket-dc", fixture: "internal/bitbucketdc/testdata/refs-changed-v10.json",
		header: func(secret, id string, body []byte) http.Header {
			h := http.Header{}
			h.Set("Content-Type", "application/json; charset=utf-8")
			h.Set("X-Event-Key", "repo:refs_changed")
			h.Set("X-Request-Id", id)
			h.Set("X-Hub-Signature", "sha256="+signHex(secret, body))
			return h
		},
	},
	{
		name: "azuredevops", path: "/webhooks/azuredevops", fixture: "internal/azuredevops/testdata/git.push.json", idField: "03c164c2-8912-4d5e-8009-3707d5f83734",
		header: func(secret, _ string, _ []byte) http.Header {
			h := http.Header{}
			h.Set("Content-Type", "application/json; charset=utf-8")
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("doraload:"+secret)))
			return h
		},
	},
}

// vcsPushRequests makes n deliveries of src's push, each with its own
// delivery id and commit SHAs, for dora and for the floor (same bodies).
func vcsPushRequests(root, secret string, src vcsSource, first, n int) (dora, floor []request, err error) {
	fixture, err := os.ReadFile(filepath.Join(root, src.fixture))
	if err != nil {
		return nil, nil, err
	}
	for k := range n {
		i := first + k
		id := deliveryID(2<<40 + i)
		body := shaPattern.ReplaceAllFunc(fixture, func(sha []byte) []byte { return []byte(newSHA(i, string(sha))) })
		if src.idField != "" {
			body = []byte(strings.Replace(string(body), src.idField, id, 1))
		}
		dora = append(dora, request{body: body, header: src.header(secret, id, body)})
		fh := http.Header{}
		fh.Set("Content-Type", "application/json")
		fh.Set("X-Hub-Signature-256", "sha256="+signHex(secret, body))
		floor = append(floor, request{body: body, header: fh})
	}
	return dora, floor, nil
}

func signHex(secret string, body []byte) string { return webhook.SignHMACSHA256(secret, body) }

// vcsCommits counts the commits a source's push carries (for the report).
func vcsCommits(body []byte) int {
	var v struct {
		Commits  []json.RawMessage `json:"commits"`
		Resource struct {
			Commits []json.RawMessage `json:"commits"`
		} `json:"resource"`
		Push struct {
			Changes []struct {
				Commits []json.RawMessage `json:"commits"`
			} `json:"changes"`
		} `json:"push"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	n := len(v.Commits) + len(v.Resource.Commits)
	for _, c := range v.Push.Changes {
		n += len(c.Commits)
	}
	return n
}

// vcsRun is one source's measurement.
type vcsRun struct {
	name           string
	size, commits  int
	dora, floorRun run
}

func vcsDescribe(r vcsRun, src vcsSource) string {
	return fmt.Sprintf("%s (%s, %d commits, %d bytes)", r.name, src.fixture, r.commits, r.size)
}
