package webhook_test

// Benchmarks of issue 7, item 2 at the handler level, in process (no
// network): a signed GitHub push (internal/github/testdata/push.json)
// through the webhook Handler with the GitHub provider and a sink that
// accepts the events, against the floor, a bare net/http handler that reads
// the body and checks the HMAC. scripts/bench.sh reports the ratio.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/github"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const benchSecret = "bench-secret"

func benchBody(b *testing.B) ([]byte, string) {
	body, err := os.ReadFile(filepath.Join("..", "github", "testdata", "push.json"))
	if err != nil {
		b.Fatal(err)
	}
	return body, "sha256=" + webhook.SignHMACSHA256(benchSecret, body)
}

func serve(b *testing.B, h http.Handler, body []byte, sig string) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(github.EventHeader, "push")
		r.Header.Set(github.DeliveryHeader, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		r.Header.Set(github.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkHandlerGitHubPush: the receiver's webhook path minus the engine.
func BenchmarkHandlerGitHubPush(b *testing.B) {
	body, sig := benchBody(b)
	cfg := github.DefaultConfig()
	cfg.Secret = benchSecret
	h := webhook.NewHandler(webhook.Options{
		Routes: []webhook.Route{{Path: "/webhooks/github", Provider: github.New(cfg)}},
		Sink: func(_ context.Context, _ string, evs []event.Event) (webhook.SinkResult, error) {
			return webhook.SinkResult{Accepted: len(evs)}, nil
		},
	})
	serve(b, h, body, sig)
}

// BenchmarkHandlerFloor: read the body, check the HMAC, answer 200.
func BenchmarkHandlerFloor(b *testing.B) {
	body, sig := benchBody(b)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s, _ := strings.CutPrefix(r.Header.Get(github.SignatureHeader), "sha256=")
		if !webhook.ValidHMACSHA256(benchSecret, read, s) {
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	serve(b, h, body, sig)
}
