package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// serveGatewayProxy serves s.gatewayURL: it passes each request to the
// gateway replica that answers ready (the leader), as a Kubernetes Service
// does with a readiness probe, and answers 503 while there is none, so
// that the agents' exporters retry. It returns the function that stops it.
func (s *soak) serveGatewayProxy() (func(), error) {
	u, err := url.Parse(s.gatewayURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := url.Parse(s.replicas[s.leaderIndex()].webhook)
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		// A replica gone between the leader check and the request is a
		// Service endpoint gone: the client sees 503 and retries.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "gateway unavailable: "+err.Error(), http.StatusServiceUnavailable)
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name, _ := s.leader.Load().(string); name == "" || !strings.HasPrefix(name, "gateway-") {
				http.Error(w, "no ready gateway", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
