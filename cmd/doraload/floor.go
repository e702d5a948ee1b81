package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const floorHealthPath = "/health"

// floorHandler is the floor of webhook ingest: read the body, check its
// X-Hub-Signature-256, answer. Nothing a webhook receiver could skip.
func floorHandler(secret configopaque.String) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+floorHealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.DefaultMaxBodySize))
		if err != nil {
			http.Error(w, `{"error":"reading body"}`, http.StatusBadRequest)
			return
		}
		sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		if !ok || !webhook.ValidHMACSHA256(secret, body, sig) {
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	return mux
}

// runFloor is the `doraload floor` subcommand: the floor server, in its own
// process like the collectors it is compared with.
func runFloor(args []string) int {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	listen := fs.String("addr", "127.0.0.1:0", "address to listen on (loopback)")
	secret := fs.String("secret", "", "webhook secret")
	_ = fs.Parse(args)
	if !strings.HasPrefix(*listen, "127.0.0.1:") {
		fmt.Fprintln(os.Stderr, "doraload floor: -addr must be on 127.0.0.1")
		return 2
	}
	srv := &http.Server{Addr: *listen, Handler: floorHandler(configopaque.String(*secret))}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "doraload floor:", err)
		return 1
	}
	return 0
}
