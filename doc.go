// Package dorareceiver implements the `dora` receiver: it turns software
// delivery events (Kubernetes rollouts today; Git, CI/CD and incident webhooks
// and CI/CD spans as they are added) into the DORA metrics.
//
// Data flows one way: each source under internal/ turns its input into
// normalized events (internal/event), the pure engine (internal/engine)
// computes cumulative metric state from them, and the emitter
// (internal/emitter) turns that state into pmetric data for the pipeline.
//
//go:generate go tool mdatagen metadata.yaml
package dorareceiver
