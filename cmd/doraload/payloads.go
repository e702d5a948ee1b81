package main

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Fixtures the payloads are made from, relative to the module root: the
// shapes GitHub and the contrib GitHub receiver really send.
const (
	pushFixture             = "internal/github/testdata/push.json"
	deploymentStatusFixture = "internal/github/testdata/deployment_status.json"
	deploySpansFixture      = "internal/cicdspans/testdata/github-deploy-success.json"
	jenkinsSpansFixture     = "internal/cicdspans/testdata/jenkins-deploy-success.json"
)

// request is one pre-built HTTP request: its body and headers, ready to
// send many times without any work in the timed part.
type request struct {
	body   []byte
	header http.Header
}

// shaPattern finds the commit SHAs of a push (id, tree_id, before, after).
var shaPattern = regexp.MustCompile(`\b[0-9a-f]{40}\b`)

// newSHA derives a fresh SHA for original in payload i, so that every
// payload carries commits never seen before.
func newSHA(i int, original string) string {
	h := sha1.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	h.Write(n[:])
	h.Write([]byte(original))
	return hex.EncodeToString(h.Sum(nil))
}

// pushRequests makes n GitHub push deliveries from the push fixture, each
// with its own delivery id and its own commit SHAs (same size as the
// fixture, so every delivery is new work of the same shape), signed with
// HMAC-SHA256 under secret. first numbers them, so that sets made for
// different phases never share a delivery.
func pushRequests(root, secret string, first, n int) ([]request, error) {
	fixture, err := os.ReadFile(filepath.Join(root, pushFixture))
	if err != nil {
		return nil, err
	}
	out := make([]request, n)
	for k := range n {
		i := first + k
		body := shaPattern.ReplaceAllFunc(fixture, func(sha []byte) []byte {
			return []byte(newSHA(i, string(sha)))
		})
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("User-Agent", "GitHub-Hookshot/doraload")
		h.Set("X-GitHub-Event", "push")
		h.Set("X-GitHub-Delivery", deliveryID(i))
		h.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256(secret, body))
		out[k] = request{body: body, header: h}
	}
	return out, nil
}

// commitCount is the number of commits a push payload carries.
func commitCount(push []byte) (int, error) {
	var p struct {
		Commits []json.RawMessage `json:"commits"`
	}
	if err := json.Unmarshal(push, &p); err != nil {
		return 0, err
	}
	return len(p.Commits), nil
}

// deliveryID is a GUID-shaped delivery id, unique per i.
func deliveryID(i int) string {
	return fmt.Sprintf("d07a10ad-%04x-4000-8000-%012x", (i>>48)&0xffff, i&0xffffffffffff)
}

// otlpLogRequests wraps each push body, byte for byte, as the body of one
// log record in an OTLP/HTTP protobuf logs export: a request of the same
// size for the collector's own otlp receiver.
func otlpLogRequests(pushes []request) ([]request, error) {
	out := make([]request, len(pushes))
	for i, p := range pushes {
		logs := plog.NewLogs()
		rl := logs.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", "github-webhooks")
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		lr.Attributes().PutStr("github.event", "push")
		lr.Attributes().PutStr("github.delivery", p.header.Get("X-GitHub-Delivery"))
		lr.Body().SetEmptyBytes().FromRaw(p.body)
		body, err := plogotlp.NewExportRequestFromLogs(logs).MarshalProto()
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Content-Type", "application/x-protobuf")
		out[i] = request{body: body, header: h}
	}
	return out, nil
}

// spanRequests makes n OTLP/HTTP protobuf trace exports from the fixture of
// a successful GitHub Actions deployment workflow run (the spans the contrib
// GitHub receiver produces), each with its own trace id: each is a new
// deployment for the dora receiver.
func spanRequests(root string, first, n int) ([]request, error) {
	return spanRequestsOf(root, deploySpansFixture, first, n)
}

// jenkinsSpanRequests makes n exports of a Jenkins build trace (the
// Jenkins OpenTelemetry plugin's spans, its Deploy stage a deployment),
// each with its own trace id.
func jenkinsSpanRequests(root string, first, n int) ([]request, error) {
	return spanRequestsOf(root, jenkinsSpansFixture, first, n)
}

func spanRequestsOf(root, fixtureName string, first, n int) ([]request, error) {
	fixture, err := os.ReadFile(filepath.Join(root, fixtureName))
	if err != nil {
		return nil, err
	}
	out := make([]request, n)
	for k := range n {
		er := ptraceotlp.NewExportRequest()
		if err := er.UnmarshalJSON(fixture); err != nil {
			return nil, fmt.Errorf("%s: %w", fixtureName, err)
		}
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], 0xd07a10ad)
		binary.BigEndian.PutUint64(tid[8:], uint64(first+k)+1)
		forEachSpan(er.Traces(), func(s ptrace.Span) { s.SetTraceID(tid) })
		body, err := er.MarshalProto()
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Content-Type", "application/x-protobuf")
		out[k] = request{body: body, header: h}
	}
	return out, nil
}

func forEachSpan(td ptrace.Traces, f func(ptrace.Span)) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			spans := ss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				f(spans.At(k))
			}
		}
	}
}

// deploymentStatusRequest is a GitHub deployment_status "success" delivery
// for a deployment numbered i, created at now: one new successful
// deployment.
func deploymentStatusRequest(root, secret string, i int, now time.Time) (request, error) {
	fixture, err := os.ReadFile(filepath.Join(root, deploymentStatusFixture))
	if err != nil {
		return request{}, err
	}
	s := string(fixture)
	// The fixture's deployment id, and its status's times.
	s = strings.ReplaceAll(s, "1874460921", strconv.Itoa(900000000+i))
	ts := now.UTC().Format(time.RFC3339)
	s = strings.ReplaceAll(s, "2026-11-02T09:14:47Z", ts)
	body := []byte(s)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "deployment_status")
	h.Set("X-GitHub-Delivery", deliveryID(1<<40+i))
	h.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256(secret, body))
	return request{body: body, header: h}, nil
}
