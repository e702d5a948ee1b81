package github

// Benchmarks of issue 7, item 2 at the parser level: parse and verify a
// GitHub push (testdata/push.json, 3 commits, ~4 KB, HMAC-SHA256) against
// the floor, reading the same bytes and checking the HMAC only.
// scripts/bench.sh runs them and reports the ratio.

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

func benchPush(b *testing.B) []byte {
	body, err := os.ReadFile(filepath.Join("testdata", "push.json"))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchHeader(body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(EventHeader, "push")
	h.Set(DeliveryHeader, guid)
	h.Set(SignatureHeader, "sha256="+webhook.SignHMACSHA256(secret, body))
	return h
}

// BenchmarkPushParseVerify: read the body, verify and parse it into events.
func BenchmarkPushParseVerify(b *testing.B) {
	body := benchPush(b)
	h := benchHeader(body)
	p := provider()
	received := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, err := io.ReadAll(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		res, err := p.Parse(&webhook.Request{Header: h, Body: read, Received: received})
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, res)
		}
	}
}

// BenchmarkPushFloor: read the same body and check its HMAC, nothing else.
func BenchmarkPushFloor(b *testing.B) {
	body := benchPush(b)
	h := benchHeader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		read, err := io.ReadAll(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		sig, _ := strings.CutPrefix(h.Get(SignatureHeader), "sha256=")
		if !webhook.ValidHMACSHA256(secret, read, sig) {
			b.Fatal("signature")
		}
	}
}
