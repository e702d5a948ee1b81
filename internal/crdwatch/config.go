// Package crdwatch is what the custom-resource sources (Argo Rollouts,
// Flagger) share: a dynamic informer per namespace whose transform keeps
// only what a source uses, a rate-limited work queue that its event
// handlers only add keys to (the sample-controller pattern), a worker that
// reads the object from the informer's store and hands it to the source,
// the API-server connection built from the kubernetes section's auth
// settings, and the lookups of the commit, environment and team keys that
// the Kubernetes source applies to Deployments.
package crdwatch

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config selects the watched objects of one resource.
type Config struct {
	// Namespaces to watch; empty watches all namespaces.
	Namespaces []string `mapstructure:"namespaces"`
	// LabelSelector restricts the watched objects (Kubernetes syntax).
	LabelSelector string `mapstructure:"label_selector"`
}

// Validate reports problems naming the key, relative to the section.
func (c *Config) Validate() error {
	var errs []error
	for i, ns := range c.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is not a namespace name: %s", i, ns, msgs[0]))
		}
	}
	if _, err := labels.Parse(c.LabelSelector); err != nil {
		errs = append(errs, fmt.Errorf("label_selector: %w", err))
	}
	return errors.Join(errs...)
}
